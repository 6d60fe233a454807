"""test_submit.py: local submission: sendmail -> postdrop -> maildrop/ -> pickup -> cleanup -> incoming/."""
import os
import pathlib
import pwd
import subprocess

import pytest

from conftest import BIN, require, run
from mailinstance import TEST_USER, wait_for, wake_pickup

NO_PICKUP_MASTER_CF = """\
cleanup   unix  n       -       n       -       0       cleanup
"""
WITH_PICKUP_MASTER_CF = NO_PICKUP_MASTER_CF + """\
pickup    unix  n       -       n       60      1       pickup
"""
MESSAGE = "Subject: hello\n\nbody line\r\n.hidden dot line\n"
REFUSED_ROOT = "sendmail: fatal: User root(0) is not allowed to submit mail"


def user_uid():
    return pwd.getpwnam(TEST_USER).pw_uid


def as_test_user(args, env, input):
    """Run args as the test user with the postdrop group added, which is what the set-gid bit of an
    installed postdrop gives (a set-gid binary would ignore POSTD_DEFAULT_CONFIG_DIR, see below)."""
    cmd = ["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--groups=postdrop", "--",
           "env", *[f"{k}={v}" for k, v in env.items()], *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)


def wait_log(inst, pattern, timeout=20.0):
    try:
        return inst.wait_log(pattern, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- maillog:\n{inst.logtext()}") from None


def dump(path):
    r = run("qfile-dump", path)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def inst(mail_instance):
    i = mail_instance(master_cf=NO_PICKUP_MASTER_CF)
    i.start()  # creates the queue layout; no pickup runs, so maildrop files stay
    return i


def sendmail(inst, *args, input=MESSAGE, env=None):
    return run("sendmail", "-C", inst.etc, *args, input=input, env=dict(inst.env, **(env or {})))


def test_root_refused_by_authorized_submit_users_then_allowed(inst):
    inst.postconf("authorized_submit_users = !root, static:anyone")
    r = run("sendmail", "-C", inst.etc, "-f", "root@example.test", TEST_USER, input=MESSAGE)
    assert r.returncode == 75, r.stderr
    assert r.stderr.strip() == REFUSED_ROOT
    assert inst.queue_files("maildrop") == []

    # A list that does not mention root at all refuses it as well; static:anyone lifts it.
    inst.postconf(f"authorized_submit_users = {TEST_USER}")
    r = run("sendmail", "-C", inst.etc, TEST_USER, input=MESSAGE)
    assert r.returncode == 75 and r.stderr.strip() == REFUSED_ROOT
    inst.postconf("authorized_submit_users = static:anyone")
    r = run("sendmail", "-C", inst.etc, TEST_USER, input=MESSAGE)
    assert r.returncode == 0, r.stderr
    assert len(inst.queue_files("maildrop")) == 1


def test_empty_list_refuses_everybody(inst):
    inst.postconf("authorized_submit_users =")
    r = run("sendmail", "-C", inst.etc, TEST_USER, input=MESSAGE)
    assert r.returncode == 75 and r.stderr.strip() == REFUSED_ROOT


def test_maildrop_file_content(inst):
    r = run("sendmail", "-C", inst.etc, "-F", "The Root", "-f", "<alice@example.test>", f"{TEST_USER}, bob@example.test",
            input=MESSAGE)
    assert r.returncode == 0, r.stderr
    files = inst.queue_files("maildrop")
    assert len(files) == 1
    path = inst.spool / "maildrop" / files[0]
    st = path.stat()
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o644
    out = dump(path)
    assert "sender=alice@example.test" in out
    assert f"rcpt={TEST_USER} " in out and "rcpt=bob@example.test " in out
    assert "full_name=The Root" in out
    assert "origin_queue=maildrop" in out
    # CRLF became LF; without -i the lone-dot rule only applies to "." alone, so ".hidden" stays.
    assert out.split("content:\n", 1)[1] == "Subject: hello\n\nbody line\n.hidden dot line\n"


def test_dot_ends_input_unless_i(inst):
    msg = "Subject: dots\n\nbefore\n.\nafter\n"
    assert sendmail(inst, TEST_USER, input=msg).returncode == 0
    assert sendmail(inst, "-oi", TEST_USER, input=msg).returncode == 0
    contents = sorted(dump(inst.spool / "maildrop" / f).split("content:\n", 1)[1]
                      for f in inst.queue_files("maildrop"))
    assert contents == ["Subject: dots\n\nbefore\n", "Subject: dots\n\nbefore\n.\nafter\n"]


def test_t_extracts_recipients_and_removes_bcc(inst):
    msg = ("From: me@example.test\nTo: A <a@example.test>, b@example.test (Bee)\n"
           "Bcc: secret@example.test,\n  hidden@example.test\nSubject: t\n\nTo: not@example.test\n")
    r = sendmail(inst, "-t", input=msg)
    assert r.returncode == 0, r.stderr
    out = dump(inst.spool / "maildrop" / inst.queue_files("maildrop")[0])
    rcpts = [line.split()[0] for line in out.splitlines() if line.startswith("rcpt=")]
    assert rcpts == ["rcpt=a@example.test", "rcpt=b@example.test", "rcpt=secret@example.test",
                     "rcpt=hidden@example.test"]
    content = out.split("content:\n", 1)[1]
    assert "Bcc" not in content and "hidden@" not in content and "To: not@example.test" in content


def test_no_recipients(inst):
    r = sendmail(inst)
    assert r.returncode == 64
    assert "Recipient addresses must be specified on the command line or via the -t option" in r.stderr
    r = sendmail(inst, "-t", input="Subject: none\n\nx\n")
    assert r.returncode == 64 and "No recipient addresses found in message header" in r.stderr


def test_message_size_limit(inst):
    inst.postconf("message_size_limit = 1000")
    r = sendmail(inst, TEST_USER, input="Subject: big\n\n" + "x" * 2000 + "\n")
    assert r.returncode != 0 and "message file too big" in r.stderr
    assert inst.queue_files("maildrop") == []


def test_bv_reports_each_recipient(inst):
    # No report message (Postfix mails one): one line per recipient, from the queue manager's routing.
    inst.postconf("transport_maps = inline:{ {relay.example=smtp:[192.0.2.1]:2525}, "
                  "{bad.example=error:no mail for bad.example} }")
    r = sendmail(inst, "-bv", TEST_USER, "nosuch@localhost", "x@relay.example, y@bad.example", input="")
    assert r.returncode == 67, r.stderr
    assert r.stdout.splitlines() == [
        f"{TEST_USER}@mx.example.test: deliverable via local:mx.example.test",
        "nosuch@localhost: undeliverable: User unknown in local recipient table",
        "x@relay.example: deliverable via smtp:[192.0.2.1]:2525",
        "y@bad.example: undeliverable: no mail for bad.example",
    ]
    r = sendmail(inst, "-bv", f"{TEST_USER}@localhost", "postmaster", input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{TEST_USER}@localhost: deliverable via local:mx.example.test",
                                     "postmaster@mx.example.test: deliverable via local:mx.example.test"]
    assert inst.queue_files("maildrop") == []  # nothing is submitted
    # Submission rules apply as to any sendmail use.
    inst.postconf("authorized_submit_users = !root, static:anyone")
    r = sendmail(inst, "-bv", TEST_USER, input="")
    assert r.returncode == 75 and r.stdout == ""


def test_test_user_submits_and_C_option(inst):
    default = inst.root / "default-etc"  # tmp_path is not reachable by the test user
    default.mkdir()
    (default / "main.cf").write_text("")
    env = {"POSTD_DEFAULT_CONFIG_DIR": str(default), "POSTD_LOG": f"file:{inst.log}"}
    sm = str(BIN / "sendmail")

    r = as_test_user([sm, "-C", str(inst.etc), TEST_USER], env, MESSAGE)
    assert r.returncode == 75
    assert r.stderr.strip() == (
        f"sendmail: fatal: -C option: non-default configuration directory {inst.etc} is not listed in "
        "alternate_config_directories or multi_instance_directories of the default main.cf")
    # The same through MAIL_CONFIG: sendmail trusts it, postdrop (the privileged part) checks it.
    r = as_test_user([sm, TEST_USER], dict(env, MAIL_CONFIG=str(inst.etc)), MESSAGE)
    assert r.returncode != 0 and "postdrop: fatal: -c option: non-default configuration directory" in r.stderr
    assert inst.queue_files("maildrop") == []

    (default / "main.cf").write_text(f"multi_instance_directories = /nonexistent, {inst.etc}\n")
    r = as_test_user([sm, "-C", f"{inst.etc}/main.cf", TEST_USER], env, MESSAGE)
    assert r.returncode == 0, r.stderr
    (default / "main.cf").write_text(f"alternate_config_directories = {inst.etc}\n")
    r = as_test_user([sm, "-C", str(inst.etc), "root"], env, MESSAGE)
    assert r.returncode == 0, r.stderr
    files = inst.queue_files("maildrop")
    assert len(files) == 2
    uid = user_uid()
    for f in files:
        assert (inst.spool / "maildrop" / f).stat().st_uid == uid
        assert f"sender={TEST_USER}\n" in dump(inst.spool / "maildrop" / f)


def test_setgid_postdrop_ignores_the_test_variable(inst):
    """An installed (set-gid) postdrop must not let the caller choose the default main.cf."""
    bindir = inst.root / "bin"
    bindir.mkdir()
    pd = bindir / "postdrop"
    pd.write_bytes((BIN / "postdrop").read_bytes())
    os.chown(pd, 0, pwd.getpwnam("root").pw_gid)
    subprocess.run(["chgrp", "postdrop", str(pd)], check=True)
    os.chmod(pd, 0o2755)
    default = inst.root / "default-etc"
    default.mkdir()
    (default / "main.cf").write_text(f"alternate_config_directories = {inst.etc}\n")
    cmd = ["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups", "--",
           "env", f"POSTD_DEFAULT_CONFIG_DIR={default}", str(pd), "-c", str(inst.etc)]
    r = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=30)
    # Had it read the variable's main.cf (which lists the directory), it would have queued the message.
    # It reads the real default main.cf: missing on this host, or there but not listing the directory.
    if os.path.exists("/etc/postfix/main.cf"):
        assert (r.returncode, r.stderr) == (77, f"postdrop: fatal: -c option: non-default configuration "
                                                f"directory {inst.etc} is not listed in alternate_config_directories "
                                                "or multi_instance_directories of the default main.cf\n"), r
    else:
        assert (r.returncode, r.stderr) == (75, "postdrop: fatal: open /etc/postfix/main.cf: "
                                                "No such file or directory\n"), r
    assert inst.queue_files("maildrop") == []


def test_postdrop_rejects_garbage(inst):
    r = inst.cmd("postdrop", input="From: not a queue file\n")
    assert r.returncode == 65 and "malformed input" in r.stderr
    assert inst.queue_files("maildrop") == []


def test_bs_session(inst):
    session = ("HELO me\r\nMAIL FROM:<carol@example.test>\r\nRCPT TO:<" + TEST_USER + "@localhost>\r\n"
               "DATA\r\nSubject: smtp\r\n\r\n..stuffed\r\n.\r\nQUIT\r\n")
    r = sendmail(inst, "-bs", input=session)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()  # text mode: CRLF arrives as LF
    assert lines[0].startswith("220 ") and "250 2.0.0 Ok: queued" in lines and "221 2.0.0 Bye" in lines
    out = dump(inst.spool / "maildrop" / inst.queue_files("maildrop")[0])
    assert "sender=carol@example.test" in out
    assert out.split("content:\n", 1)[1] == "Subject: smtp\n\n.stuffed\n"


def test_pickup_moves_maildrop_to_incoming(inst):
    require((BIN / "cleanup").exists(), f"{BIN}/cleanup is not built")
    r = sendmail(inst, "-f", "alice@example.test", TEST_USER)
    assert r.returncode == 0, r.stderr
    assert len(inst.queue_files("maildrop")) == 1
    assert inst.queue_files("incoming") == []
    # A file that is not a valid maildrop file is set aside, never submitted.
    bad = inst.spool / "maildrop" / "12345ABC"
    bad.write_bytes(b"\x89PDQ\r\n\x1a\ngarbage")
    inst.stop()
    (inst.etc / "master.cf").write_text(WITH_PICKUP_MASTER_CF)
    inst.start()
    # The master wakes pickup only after its 60 s timer: what was dropped while pickup was absent is
    # taken at the next wakeup, which any client can trigger (postdrop does, after each message).
    wake_pickup(inst)
    m = wait_log(inst, r": ([0-9A-F]+): uid=0 from=<alice@example\.test>")
    qid = m.group(1)
    wait_for(lambda: inst.queue_files("maildrop") == [], what="maildrop emptied")
    wait_for(lambda: qid in inst.queue_files("incoming"), what=f"{qid} in incoming")
    wait_log(inst, r"warning: maildrop/12345ABC: bad file: .*moved to saved/12345ABC")
    assert (inst.spool / "saved" / "12345ABC").exists()
    out = dump(inst.spool / "incoming" / qid)
    assert "sender=alice@example.test" in out and "body line" in out

    # With pickup running, postdrop's wakeup gets a new message picked up at once (not after 60 s).
    r = sendmail(inst, "-f", "bob@example.test", TEST_USER)
    assert r.returncode == 0, r.stderr
    wait_log(inst, r"uid=0 from=<bob@example\.test>", timeout=15)
