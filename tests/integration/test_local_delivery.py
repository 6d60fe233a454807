"""test_local_delivery.py: local(8) beyond mailboxes: |command, .forward, :include:, forwarding off-host
through cleanup, mailbox_command, luser_relay and recipient_delimiter, on real instances."""
import os
import pathlib
import pwd
import re
import stat

import pytest

from conftest import run
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, wait_for
from smtp_peer import SmtpPeer

MASTER_CF = DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n"
DOMAIN = "mx.example.test"
SENDER = "sender@example.test"
MESSAGE = "Received: from client.example.test by mx.example.test\nSubject: test {tag}\n" \
          "From: sender@example.test\n\nHello {tag}.\n"
DELAYS = r"delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+"
HOME = pathlib.Path(pwd.getpwnam(TEST_USER).pw_dir)
USER_UID = pwd.getpwnam(TEST_USER).pw_uid
NOBODY_UID = pwd.getpwnam("nobody").pw_uid

# Writes its environment, its uid and its input to DIR/NAME.out, then exits with STATUS (argv 1, 2).
SCRIPT = """#!/bin/sh
out="{dir}/$1.out"
{{
  for v in USER LOGNAME HOME SHELL SENDER RECIPIENT EXTENSION DOMAIN LOCAL ORIGINAL_RECIPIENT; do
    eval "echo $v=\\$$v"
  done
  echo UID=$(id -u)
  cat
}} > "$out.tmp" && mv "$out.tmp" "$out"
[ "${{2:-0}}" = 0 ] || echo "failing with $2" >&2
exit ${{2:-0}}
"""


def inject(inst, *rcpts, tag="x", sender=SENDER):
    r = run("queue-inject", "-c", inst.etc, "-f", sender, *rcpts, input=MESSAGE.format(tag=tag))
    assert r.returncode == 0, r.stderr
    qid = r.stdout.strip()
    assert re.fullmatch(r"[0-9A-F]{6,21}", qid), r.stdout
    return qid


def expect(inst, pattern, timeout=20.0):
    try:
        return inst.wait_log(pattern, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- maillog:\n{inst.logtext()}") from None


def env_of(path):
    """NAME=VALUE lines before the message of a SCRIPT output file."""
    head = path.read_text().split("\nFrom ", 1)[0]
    return dict(line.split("=", 1) for line in head.splitlines() if "=" in line)


@pytest.fixture
def workdir(mail_instance):
    """A world-writable directory with the command script: commands run as nobody or the test user."""
    made = []

    def make(inst):
        d = inst.root / "work"
        d.mkdir()
        os.chmod(d, 0o777)
        script = d / "cmd.sh"
        script.write_text(SCRIPT.format(dir=d))
        os.chmod(script, 0o755)
        made.append(d)
        return d
    return make


@pytest.fixture
def home_restored():
    """The test user's home as it was: the dot files a test writes are removed at teardown."""
    before = {p.name for p in HOME.iterdir()}
    yield HOME
    for p in HOME.iterdir():
        if p.name not in before and p.is_file():
            p.unlink()


def start(mail_instance, main_extra="", aliases=""):
    inst = mail_instance(master_cf=MASTER_CF, main_extra=main_extra)
    if aliases:
        with open(inst.aliases, "a") as f:
            f.write(aliases)
        inst.newaliases()
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    return inst


def user_file(path, text, mode=0o644):
    path.write_text(text)
    os.chown(path, USER_UID, pwd.getpwnam(TEST_USER).pw_gid)
    os.chmod(path, mode)


def test_command_alias_env_and_exit_codes(mail_instance, workdir):
    inst = mail_instance(master_cf=MASTER_CF, main_extra="recipient_delimiter = +\ncommand_time_limit = 3s\n")
    d = workdir(inst)
    with open(inst.aliases, "a") as f:
        f.write(f'cmdok: "|{d}/cmd.sh ok 0"\ncmdtemp: "|{d}/cmd.sh temp 75"\n'
                f'cmdnouser: "|{d}/cmd.sh nouser 67"\ncmdslow: "|sleep 60"\n')
    inst.newaliases()
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")

    qid = inject(inst, f"cmdok+tag@{DOMAIN}", tag="command")
    expect(inst, rf"{qid}: to=<cmdok\+tag@{DOMAIN}>, relay=local, {DELAYS}, dsn=2\.0\.0, "
                 rf"status=sent \(delivered to command: {re.escape(str(d))}/cmd\.sh ok 0\)")
    expect(inst, rf"{qid}: removed")
    out = d / "ok.out"
    env = env_of(out)
    # Root owns the aliases: the command runs as default_privs (nobody).
    assert env["UID"] == str(NOBODY_UID)
    assert env["USER"] == "cmdok" and env["LOGNAME"] == "cmdok"
    assert env["EXTENSION"] == "tag" and env["LOCAL"] == "cmdok+tag" and env["DOMAIN"] == DOMAIN
    assert env["RECIPIENT"] == f"cmdok+tag@{DOMAIN}" and env["SENDER"] == SENDER
    text = out.read_text()
    assert f"\nFrom {SENDER} " in text and f"Delivered-To: cmdok+tag@{DOMAIN}\n" in text
    assert "Subject: test command\n" in text

    # EX_TEMPFAIL: deferred, the message stays; EX_NOUSER: bounced.
    qt = inject(inst, f"cmdtemp@{DOMAIN}", tag="temp")
    expect(inst, rf"{qt}: to=<cmdtemp@{DOMAIN}>, relay=local, {DELAYS}, dsn=4\.3\.0, "
                 r"status=deferred \(temporary failure")
    qn = inject(inst, f"cmdnouser@{DOMAIN}", tag="nouser")
    expect(inst, rf"{qn}: to=<cmdnouser@{DOMAIN}>, relay=local, {DELAYS}, dsn=5\.1\.1, "
                 r"status=bounced \(user unknown\. Command output: failing with 67 ?\)")
    expect(inst, rf"{qn}: removed")
    assert qt in inst.queue_files("deferred") + inst.queue_files("active") + inst.queue_files("incoming")

    # A command that outlives command_time_limit is killed and the recipient deferred.
    qs = inject(inst, f"cmdslow@{DOMAIN}", tag="slow")
    expect(inst, rf"{qs}: to=<cmdslow@{DOMAIN}>, relay=local, {DELAYS}, dsn=4\.3\.0, "
                 r'status=deferred \(Command time limit exceeded: "sleep 60"\)', timeout=30)


def test_dot_forward(mail_instance, workdir, home_restored):
    """The test user's home is shared by every instance on the machine: the plain .forward, which would
    divert other tests' mail to that user, exists only for one delivery; the rest uses .forward+fwdtest
    (forward_path's first default element), which only mail to postd-test+fwdtest reads."""
    inst = mail_instance(master_cf=MASTER_CF, main_extra="recipient_delimiter = +\n")
    d = workdir(inst)
    copy = d / "copy.mbox"
    with open(inst.aliases, "a") as f:
        f.write(f"fwdcopy: {copy}\n")
    inst.newaliases()
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    cmd = re.escape(str(d)) + "/cmd\\.sh"

    # .forward+ext to another local address (an alias writing a file) and to a command run as the user.
    ext_forward = home_restored / ".forward+fwdtest"
    user_file(ext_forward, f"# my forward\nfwdcopy@{DOMAIN}\n\"|{d}/cmd.sh ext 0\"\n")
    qe = inject(inst, f"{TEST_USER}+fwdtest@{DOMAIN}", tag="extension")
    expect(inst, rf"{qe}: to=<{TEST_USER}\+fwdtest@{DOMAIN}>, relay=local, {DELAYS}, dsn=2\.0\.0, "
                 rf"status=sent \(delivered to command: {cmd} ext 0\)")
    expect(inst, rf"{qe}: removed")
    env = env_of(d / "ext.out")
    assert env["UID"] == str(USER_UID) and env["HOME"] == str(HOME) and env["USER"] == TEST_USER
    assert env["SHELL"] == pwd.getpwnam(TEST_USER).pw_shell and env["EXTENSION"] == "fwdtest"
    assert "Subject: test extension" in (d / "ext.out").read_text()
    assert "Subject: test extension" in copy.read_text()
    assert inst.mbox(TEST_USER) == b""  # the .forward replaces the mailbox

    # The plain .forward, for plain mail to the user (removed as soon as it has been read).
    plain_forward = home_restored / ".forward"
    # Each run writes its own file (the shell expands $$): mail another instance on this machine sends to
    # the test user meanwhile also runs it, and must not overwrite this message's copy.
    user_file(plain_forward, f"|{d}/cmd.sh plain-$$ 0\n")
    try:
        qid = inject(inst, f"{TEST_USER}@{DOMAIN}", tag="forward")
        expect(inst, rf"{qid}: to=<{TEST_USER}@{DOMAIN}>, relay=local, {DELAYS}, dsn=2\.0\.0, "
                     rf"status=sent \(delivered to command: {cmd} plain-\$\$ 0\)")
    finally:
        plain_forward.unlink()
    assert any("Subject: test forward" in f.read_text() for f in d.glob("plain-*.out")), list(d.iterdir())
    assert inst.mbox(TEST_USER) == b""

    # A group-writable .forward is not the user's alone: ignored, the mail goes to the mailbox.
    os.chmod(ext_forward, 0o664)
    qg = inject(inst, f"{TEST_USER}+fwdtest@{DOMAIN}", tag="writable")
    expect(inst, rf"{qg}: to=<{TEST_USER}\+fwdtest@{DOMAIN}>, relay=local, .*status=sent "
                 r"\(delivered to mailbox\)")
    expect(inst, r"warning: .*\.forward\+fwdtest is group or world writable: ignored")
    assert b"Subject: test writable" in inst.mbox(TEST_USER)


def test_include(mail_instance, workdir):
    inst = mail_instance(master_cf=MASTER_CF, main_extra="allow_mail_to_commands = alias, forward, include\n")
    d = workdir(inst)
    inc = inst.root / "list.inc"
    inc.write_text(f"# members\n{TEST_USER}\n|{d}/cmd.sh inc 0\n")
    inc2 = inst.root / "files.inc"
    inc2.write_text(f"{d}/included.mbox\n")
    with open(inst.aliases, "a") as f:
        f.write(f"team: :include:{inc}\nfiles: :include:{inc2}\n")
    inst.newaliases()
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")

    qid = inject(inst, f"team@{DOMAIN}", tag="include")
    expect(inst, rf"{qid}: to=<{TEST_USER}@{DOMAIN}>, orig_to=<team@{DOMAIN}>, relay=local, .*"
                 r"status=sent \(delivered to mailbox\)")
    expect(inst, rf"{qid}: to=<team@{DOMAIN}>, .*status=sent \(delivered to command: ")
    expect(inst, rf"{qid}: removed")
    assert b"Subject: test include" in inst.mbox(TEST_USER)
    assert "Subject: test include" in (d / "inc.out").read_text()

    # allow_mail_to_files without "include": a file named in an include file is refused.
    qf = inject(inst, f"files@{DOMAIN}", tag="incfile")
    expect(inst, rf"{qf}: to=<files@{DOMAIN}>, .*dsn=5\.7\.1, status=bounced \(mail to files is restricted")
    assert not (d / "included.mbox").exists()


def test_alias_forwarded_to_remote(mail_instance):
    peer = SmtpPeer()
    try:
        inst = start(mail_instance, f"relayhost = [127.0.0.1]:{peer.port}\n",
                     aliases=f"fwd: someone@remote.example, {TEST_USER}\n")
        qid = inject(inst, f"fwd@{DOMAIN}", tag="remote")
        m = expect(inst, rf"{qid}: to=<someone@remote\.example>, orig_to=<fwd@{DOMAIN}>, relay=local, "
                         rf"{DELAYS}, dsn=2\.0\.0, status=sent \(forwarded as ([0-9A-F]+)\)")
        new = m.group(1)
        expect(inst, rf"{qid}: removed")
        expect(inst, rf"{new}: to=<someone@remote\.example>, relay=127\.0\.0\.1.*status=sent")
        expect(inst, rf"{new}: removed")
        msgs = peer.messages()
        assert len(msgs) == 1, msgs
        assert msgs[0]["mail_from"] == SENDER and msgs[0]["rcpts"] == ["someone@remote.example"]
        data = msgs[0]["data"].decode()
        assert f"Delivered-To: fwd@{DOMAIN}" in data and "Subject: test remote" in data
        assert b"Subject: test remote" in inst.mbox(TEST_USER)
        assert inst.logtext().count("forwarded as") == 1
    finally:
        peer.close()


def test_mailbox_command(mail_instance, workdir):
    inst = mail_instance(master_cf=MASTER_CF)
    d = workdir(inst)
    inst.postconf(f"mailbox_command = {d}/cmd.sh mbox 0")
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    qid = inject(inst, f"{TEST_USER}@{DOMAIN}", tag="mailboxcmd")
    expect(inst, rf"{qid}: to=<{TEST_USER}@{DOMAIN}>, relay=local, {DELAYS}, dsn=2\.0\.0, "
                 rf"status=sent \(delivered to command: {re.escape(str(d))}/cmd\.sh mbox 0\)")
    out = d / "mbox.out"
    assert env_of(out)["UID"] == str(USER_UID)
    assert "Subject: test mailboxcmd" in out.read_text()
    assert inst.mbox(TEST_USER) == b""


def test_luser_relay(mail_instance):
    inst = start(mail_instance, f"luser_relay = {TEST_USER}\n")
    qid = inject(inst, f"nosuchuser@{DOMAIN}", tag="luser")
    expect(inst, rf"{qid}: to=<{TEST_USER}@{DOMAIN}>, orig_to=<nosuchuser@{DOMAIN}>, relay=local, .*"
                 r"status=sent \(delivered to mailbox\)")
    expect(inst, rf"{qid}: removed")
    box = inst.mbox(TEST_USER).decode()
    assert "Subject: test luser" in box and f"Delivered-To: nosuchuser@{DOMAIN}\n" in box
    assert "bounced" not in inst.logtext()


def test_recipient_delimiter(mail_instance):
    inst = start(mail_instance, "recipient_delimiter = +\n")
    qid = inject(inst, f"{TEST_USER}+lists@{DOMAIN}", tag="delimiter")
    expect(inst, rf"{qid}: to=<{TEST_USER}\+lists@{DOMAIN}>, relay=local, {DELAYS}, dsn=2\.0\.0, "
                 r"status=sent \(delivered to mailbox\)")
    box = inst.mbox(TEST_USER).decode()
    assert "Subject: test delimiter" in box and f"Delivered-To: {TEST_USER}+lists@{DOMAIN}\n" in box
    st = (inst.mail_spool / TEST_USER).stat()
    assert st.st_uid == USER_UID and stat.S_IMODE(st.st_mode) == 0o600


def test_forward_waits_for_cleanup_and_goes_once(mail_instance):
    """Without a cleanup service the forward is deferred (never lost, never marked done); once cleanup is
    back the retry forwards it, once."""
    peer = SmtpPeer()
    try:
        no_cleanup = "".join(line + "\n" for line in MASTER_CF.splitlines() if not line.startswith("cleanup"))
        inst = mail_instance(master_cf=no_cleanup, main_extra=f"relayhost = [127.0.0.1]:{peer.port}\n")
        with open(inst.aliases, "a") as f:
            f.write("away: someone@remote.example\n")
        inst.newaliases()
        inst.start()
        wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
        qid = inject(inst, f"away@{DOMAIN}", tag="later")
        expect(inst, rf"{qid}: to=<someone@remote\.example>, orig_to=<away@{DOMAIN}>, relay=local, {DELAYS}, "
                     r"dsn=4\.3\.0, status=deferred \(connect to cleanup")
        assert "forwarded as" not in inst.logtext()

        (inst.etc / "master.cf").write_text(MASTER_CF.format(port=inst.port))
        r = inst.postfix("reload")
        assert r.returncode == 0, r.stderr
        m = expect(inst, rf"{qid}: to=<someone@remote\.example>, .*status=sent \(forwarded as ([0-9A-F]+)\)",
                   timeout=40)
        expect(inst, rf"{qid}: removed")
        expect(inst, rf"{m.group(1)}: removed")
        assert len(peer.messages()) == 1 and inst.logtext().count("forwarded as") == 1
    finally:
        peer.close()


def test_command_big_input_and_output(mail_instance, workdir):
    """A message larger than a pipe's buffer to a command that first writes more than a pipe holds, then
    closes its output and reads its input: all of it arrives, no deadlock, only a bounded part of the
    output goes into the log."""
    inst = mail_instance(master_cf=MASTER_CF, main_extra="command_time_limit = 20s\n")
    d = workdir(inst)
    script = d / "big.sh"
    script.write_text(f"#!/bin/sh\nseq 1 40000\nexec >/dev/null 2>&1\ncat > {d}/big.out\nexit 0\n")
    os.chmod(script, 0o755)
    with open(inst.aliases, "a") as f:
        f.write(f"big: |{script}\n")
    inst.newaliases()
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    body = "".join(f"line {i:06d} of a long body\n" for i in range(10000))  # about 270 kB
    r = run("queue-inject", "-c", inst.etc, "-f", SENDER, f"big@{DOMAIN}",
            input=f"Subject: big\n\n{body}")
    qid = r.stdout.strip()
    expect(inst, rf"{qid}: to=<big@{DOMAIN}>, relay=local, {DELAYS}, dsn=2\.0\.0, status=sent", timeout=30)
    assert (d / "big.out").read_text().endswith(body)


def test_mailbox_size_limit(mail_instance, workdir):
    """mailbox_size_limit, as Postfix: the largest file local writes as the recipient (mbox, a Maildir
    file, a file a |command writes). A message that would grow the mbox past it bounces with 5.2.2 and
    leaves the mailbox as it was; smaller mail still arrives."""
    # message_size_limit no larger than the mailbox limit, or local refuses to run (next test).
    inst = mail_instance(master_cf=MASTER_CF, main_extra="mailbox_size_limit = 4000\nmessage_size_limit = 3000\n")
    d = workdir(inst)
    with open(inst.aliases, "a") as f:
        f.write(f"bigcmd: \"|dd if=/dev/zero of={d}/big.out bs=1000 count=10\"\n")
    inst.newaliases()
    inst.start()
    small = inject(inst, f"{TEST_USER}@{DOMAIN}", tag="small")
    expect(inst, rf"{small}: to=<{TEST_USER}@{DOMAIN}>, relay=local, .*status=sent \(delivered to mailbox\)")
    before = inst.mbox(TEST_USER)
    r = run("queue-inject", "-c", inst.etc, "-f", SENDER, f"{TEST_USER}@{DOMAIN}",
            input=MESSAGE.format(tag="big") + ("y" * 70 + "\n") * 80)
    assert r.returncode == 0, r.stderr
    big = r.stdout.strip()
    expect(inst, rf"{big}: to=<{TEST_USER}@{DOMAIN}>, relay=local, .*dsn=5\.2\.2, status=bounced "
                 r"\(cannot update mailbox .*: error writing message: File too large \(mailbox_size_limit\)\)")
    assert inst.mbox(TEST_USER) == before  # no partial copy left behind
    # A command's writes are limited too (it runs with the same file size limit).
    q = inject(inst, f"bigcmd@{DOMAIN}", tag="cmd")
    expect(inst, rf"{q}: to=<bigcmd@{DOMAIN}>, relay=local, .*status=(bounced|deferred)")
    assert (d / "big.out").stat().st_size <= 4000


def test_mailbox_size_limit_below_message_size_limit_is_refused(mail_instance):
    """As Postfix: local will not run when a message that smtpd accepts could never fit in a mailbox;
    the mail waits in the queue and the log says what to change."""
    inst = start(mail_instance, "message_size_limit = 20000\nmailbox_size_limit = 10000\n")
    qid = inject(inst, f"{TEST_USER}@{DOMAIN}", tag="limits")
    expect(inst, r"error: main\.cf configuration error: mailbox_size_limit \(10000\) is smaller than "
                 r"message_size_limit \(20000\): raise mailbox_size_limit, or set it to 0")
    assert not re.search(rf"{qid}: to=<.*status=sent", inst.logtext())
    assert inst.mbox(TEST_USER) == b""
