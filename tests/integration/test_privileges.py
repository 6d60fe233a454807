"""test_privileges.py: each role's seccomp allow-list (a forbidden call kills it, the master logs it
and restarts it while mail flows), no chroot jail, socket creation that follows no planted link, and
the submission programs' hygiene when run by an ordinary user."""
import os
import pathlib
import re
import smtplib
import stat
import subprocess

import pytest

from conftest import BUILD, require, run, tool
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, wait_for
from smtp_peer import SmtpPeer

MASTER_CF = DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n"
ROLES = ("smtpd", "cleanup", "qmgr", "pickup", "smtp", "local")
# local's command spawner (forked before local's allow-list) keeps the baseline alone: the |command
# deliveries it starts are arbitrary programs that would inherit any filter.
SPAWNER_COMM = "local-spawner"


def hooks_built():
    h = (BUILD / "postd-build.h").read_text()
    return "#define POSTD_TEST_HOOKS 1" in h


@pytest.fixture
def peer():
    p = SmtpPeer()
    yield p
    p.close()


def expect(inst, pattern, timeout=30.0):
    try:
        return inst.wait_log(pattern, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- maillog:\n{inst.logtext()}") from None


def try_submit(inst, rcpt, subject):
    """One SMTP transaction; False when the server side broke it (a role killed meanwhile)."""
    try:
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
            c.ehlo("client.example")
            c.mail("sender@client.example")
            if c.rcpt(rcpt)[0] != 250:
                return False
            code, _ = c.data(f"From: <sender@client.example>\nSubject: {subject}\n\nbody\n")
            return code == 250
    except (OSError, smtplib.SMTPException):
        return False


def submit(inst, rcpt, subject):
    wait_for(lambda: try_submit(inst, rcpt, subject), 30, f"a 250 for {subject!r}", interval=0.5)


def filters(pid):
    """(Seccomp mode, number of filters or None) of a process, from /proc/PID/status."""
    text = pathlib.Path(f"/proc/{pid}/status").read_text()
    mode = re.search(r"^Seccomp:\s+(\d+)", text, re.M)
    n = re.search(r"^Seccomp_filters:\s+(\d+)", text, re.M)
    return int(mode.group(1)), int(n.group(1)) if n else None


def comm(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def start(mail_instance, peer, env=None):
    inst = mail_instance(master_cf=MASTER_CF,
                         main_extra=f"relayhost = [127.0.0.1]:{peer.port}\nmynetworks = 127.0.0.1/32\n")
    inst.env.update(env or {})
    inst.start()
    return inst


def test_every_role_runs_under_its_own_filter(mail_instance, peer):
    inst = start(mail_instance, peer)
    submit(inst, "someone@remote.example", "out")
    submit(inst, f"{TEST_USER}@mx.example.test", "in")
    r = run("sendmail", "-C", inst.etc, "-f", "root@mx.example.test", TEST_USER,
            input="Subject: local\n\nthrough pickup\n", env=inst.env)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len(peer.messages()) == 1 and b"through pickup" in inst.mbox(TEST_USER), 30,
             "the deliveries")
    spawners, locals_ = [], []
    for role in ROLES:
        pids = wait_for(lambda: inst.daemon_pids(role, helpers=True), 20, f"a {role} process")
        for pid in pids:
            mode, n = filters(pid)
            assert mode == 2, f"{role} pid {pid}: Seccomp: {mode}"
            if comm(pid) == SPAWNER_COMM:
                spawners.append(n)
                continue
            if role == "local":
                locals_.append(n)
            # the baseline, then the role's allow-list stacked on it
            assert n is None or n >= 2, f"{role} pid {pid}: Seccomp_filters: {n}"
    # The spawner has the baseline alone: one filter fewer than local.
    assert spawners and locals_, f"local-spawner {spawners}, local {locals_}"
    assert all(n is None or n == locals_[0] - 1 for n in spawners), f"local-spawner {spawners}, local {locals_}"
    master_mode, _ = filters(inst.master_pid())
    assert master_mode == 0  # the master forks and execs every role: it has no filter of its own


@pytest.mark.parametrize("role", ["smtpd", "cleanup", "smtp", "qmgr", "local"])
def test_forbidden_call_kills_the_role_and_mail_flows_on(mail_instance, peer, tmp_path, role):
    require(hooks_built(), f"a build with -Dtest_hooks=true (meson configure {BUILD} -Dtest_hooks=true)")
    marker = tmp_path / "fault-taken"
    inst = start(mail_instance, peer, {"POSTD_TEST_FAULT": f"{role}:execve:{marker}"})
    subject = f"after a {role} fault"
    if role == "local":
        submit(inst, f"{TEST_USER}@mx.example.test", subject)
    else:
        submit(inst, "someone@remote.example", subject)
    # The role's SIGSYS handler told the master which call it was before it died.
    expect(inst, rf"warning: process \S+/{role} pid \d+ killed by its seccomp filter \(signal 31\): "
           r"system call execve \(\d+\) is not allowed for this role; see docs/PRIVILEGES.md")
    assert marker.exists()
    if role == "local":
        wait_for(lambda: subject.encode() in inst.mbox(TEST_USER), 60, "the delivery after the restart")
        copies = inst.mbox(TEST_USER).count(f"Subject: {subject}".encode())
    else:
        wait_for(lambda: peer.messages(), 60, "the delivery after the restart")
        copies = len([m for m in peer.messages() if subject.encode() in m["data"]])
    # One copy: the killed process had not acknowledged anything it lost.
    assert copies == 1, inst.logtext()[-3000:]
    assert "forbidden call execve returned" not in inst.logtext()
    # A fresh process of the role serves under the filter.
    for pid in inst.daemon_pids(role):
        assert filters(pid)[0] == 2


def test_smtpd_gets_no_tcp_socket_and_no_writable_file(mail_instance, peer, tmp_path):
    """A TCP socket is refused (the resolver's fallback fails softly); opening a file for writing kills."""
    require(hooks_built(), f"a build with -Dtest_hooks=true (meson configure {BUILD} -Dtest_hooks=true)")
    inst = start(mail_instance, peer, {"POSTD_TEST_FAULT": f"smtpd:socket-inet:{tmp_path / 'm1'}"})
    submit(inst, "someone@remote.example", "socket")
    expect(inst, r"test hook: forbidden call socket-inet returned -1 \(Permission denied\)")
    inst.stop()
    inst2 = start(mail_instance, peer, {"POSTD_TEST_FAULT": f"smtpd:open-write:{tmp_path / 'm2'}"})
    submit(inst2, "someone@remote.example", "open")
    expect(inst2, r"process \S+/smtpd pid \d+ killed by its seccomp filter")
    assert not pathlib.Path("/tmp/postd-test-fault").exists()


def test_chroot_column_is_refused(mail_instance):
    inst = mail_instance(master_cf=DEFAULT_MASTER_CF.replace(
        "cleanup   unix  n       -       n", "cleanup   unix  n       -       y"))
    want = (r"master\.cf line \d+: service \"cleanup\" asks for a chroot jail \(chroot column y\), which "
            r"postd does not set up")
    r = inst.postfix("check")
    assert r.returncode != 0
    assert re.search(want, r.stderr), r.stderr
    r = inst.postfix("start")
    assert r.returncode != 0
    assert re.search(want, r.stderr), r.stderr
    assert inst.master_pid() is None or not os.path.exists(f"/proc/{inst.master_pid()}")


def test_planted_links_in_private_and_public_are_not_followed(mail_instance):
    """What the mail owner's uid may leave in private/ and public/ (a link to a root-owned file, a fifo
    of its own) is neither followed nor reused when the master creates its sockets and fifos."""
    fifo_cf = DEFAULT_MASTER_CF.replace("pickup    unix  n       -       n       60      1       pickup",
                                        "pickup    fifo  n       -       n       60      1       pickup")
    assert fifo_cf != DEFAULT_MASTER_CF
    inst = mail_instance(master_cf=fifo_cf)
    inst.start()
    inst.stop()
    victims = {}
    for rel in ("private/bounce", "public/qmgr"):
        victim = inst.root / ("victim-" + rel.replace("/", "-"))
        victim.write_text("precious\n")
        os.chmod(victim, 0o600)
        (inst.spool / rel).unlink()
        subprocess.run(["setpriv", "--reuid=postfix", "--regid=postfix", "--clear-groups", "ln", "-s",
                        str(victim), str(inst.spool / rel)], check=True)
        victims[rel] = victim
    # A fifo of the mail owner's own, writable by everyone, in place of public/pickup.
    (inst.spool / "public/pickup").unlink()
    subprocess.run(["setpriv", "--reuid=postfix", "--regid=postfix", "--clear-groups", "mkfifo", "-m", "0666",
                    str(inst.spool / "public/pickup")], check=True)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    for rel, victim in victims.items():
        st = victim.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600), rel
        assert victim.read_text() == "precious\n", rel
        st = os.lstat(inst.spool / rel)
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == 0, rel
    st = os.lstat(inst.spool / "public/pickup")
    assert stat.S_ISFIFO(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o622


def as_user(args, env, input=None, extra_shell=""):
    envs = [f"{k}={v}" for k, v in env.items()]
    cmd = ["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--groups=postdrop", "--", "env", *envs,
           "sh", "-c", 'exec "$@" ' + extra_shell, "sh", *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)


@pytest.fixture
def user_inst(mail_instance):
    inst = mail_instance()
    inst.start()
    return inst


def test_sendmail_with_closed_stdout_and_stderr_delivers_intact(user_inst):
    inst = user_inst
    env = {"POSTD_DEFAULT_CONFIG_DIR": str(inst.etc)}
    body = "Subject: closed fds\n\nline one\n"
    r = as_user([tool("sendmail"), "-f", f"{TEST_USER}@mx.example.test", TEST_USER], env, input=body,
                extra_shell=">&- 2>&-")
    assert r.returncode == 0
    wait_for(lambda: b"line one" in inst.mbox(TEST_USER), 30, "the delivery")
    box = inst.mbox(TEST_USER).decode()
    assert "fatal" not in box and "warning" not in box


def test_submission_refuses_a_symlinked_or_world_writable_config(user_inst):
    inst = user_inst
    link = inst.root / "etc-link"
    os.symlink(inst.etc, link)
    r = as_user([tool("postdrop")], {"POSTD_DEFAULT_CONFIG_DIR": str(link)}, input="")
    assert r.returncode != 0
    assert f"{link} is a symbolic link" in r.stderr, r.stderr
    os.chmod(inst.etc / "main.cf", 0o666)
    try:
        r = as_user([tool("sendmail"), TEST_USER], {"POSTD_DEFAULT_CONFIG_DIR": str(inst.etc)},
                    input="Subject: x\n\nx\n")
        assert r.returncode != 0
        assert f"{inst.etc}/main.cf is writable by every user" in r.stderr, r.stderr
    finally:
        os.chmod(inst.etc / "main.cf", 0o644)


def test_submission_drops_the_callers_environment(user_inst):
    """sendmail runs postdrop with the environment it kept: a wrapper in its place shows it."""
    inst = user_inst
    cmd_dir = inst.root / "bin"
    cmd_dir.mkdir()
    dump = inst.root / "env" / "env.txt"
    dump.parent.mkdir()
    os.chmod(dump.parent, 0o777)
    (cmd_dir / "postdrop").write_text(f"#!/bin/sh\nenv > {dump}\nexec {tool('postdrop')} \"$@\"\n")
    os.chmod(cmd_dir / "postdrop", 0o755)
    inst.postconf(f"command_directory = {cmd_dir}")
    env = {"POSTD_DEFAULT_CONFIG_DIR": str(inst.etc), "TZ": "UTC", "LD_LIBRARY_PATH": "/nonexistent",
           "SECRET_TOKEN": "s3cret"}
    r = as_user([tool("sendmail"), TEST_USER], env, input="Subject: env\n\nenv\n")
    assert r.returncode == 0, r.stderr
    names = {line.split("=", 1)[0] for line in dump.read_text().splitlines() if "=" in line}
    assert "TZ" in names
    assert not names & {"LD_LIBRARY_PATH", "SECRET_TOKEN"}, names


SHOWQ_LINE = "showq     unix  n       -       n       -       -       showq\n"


def test_postqueue_for_an_ordinary_user_goes_through_showq(mail_instance):
    """The queue directories are the mail owner's: a user's postqueue -p/-j asks the showq service
    through public/ (the postdrop group, which the installed set-gid bit gives) and sees what root
    sees; without that group it is told the report is unavailable."""
    closed = SmtpPeer()
    port = closed.port
    closed.close()
    inst = mail_instance(master_cf=MASTER_CF + SHOWQ_LINE,
                         main_extra=f"relayhost = [127.0.0.1]:{port}\nmynetworks = 127.0.0.1/32\n")
    inst.start()
    submit(inst, "someone@remote.example", "queued")
    wait_for(lambda: inst.queue_files("deferred"), 30, "the deferred message")
    qid = inst.queue_files("deferred")[0].split("/")[-1]
    env = {"POSTD_DEFAULT_CONFIG_DIR": str(inst.etc)}
    for flag in ("-p", "-j"):
        want = inst.cmd("postqueue", flag)
        assert want.returncode == 0 and qid in want.stdout, want.stderr
        got = as_user([tool("postqueue"), flag], env)
        assert got.returncode == 0, got.stderr
        assert got.stdout == want.stdout
        assert "someone@remote.example" in got.stdout
    r = subprocess.run(["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups", "--",
                        "env", f"POSTD_DEFAULT_CONFIG_DIR={inst.etc}", tool("postqueue"), "-p"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 69
    assert "postqueue: fatal: Queue report unavailable - mail system is down" in r.stderr
    # The role runs under its own allow-list too.
    for pid in inst.daemon_pids("showq"):
        assert filters(pid)[0] == 2


def test_showq_lists_a_large_queue_with_threads_under_its_filter(mail_instance):
    """The listing of a queue of several windows starts threads; the showq service does it under its
    seccomp allow-list and answers the user exactly what root's own listing prints."""
    inst = mail_instance(master_cf=MASTER_CF + SHOWQ_LINE)
    inst.start()
    inst.stop()
    r = subprocess.run([tool("fill_deferred"), "-c", str(inst.etc), "-n", "600"], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, **inst.env))
    assert r.returncode == 0, r.stderr
    inst.start()
    env = {"POSTD_DEFAULT_CONFIG_DIR": str(inst.etc)}
    for flag in ("-p", "-j"):
        want = inst.cmd("postqueue", flag)
        assert want.returncode == 0, want.stderr
        got = as_user([tool("postqueue"), flag], env)
        assert got.returncode == 0, got.stderr + inst.logtext()[-2000:]
        assert got.stdout == want.stdout
    assert want.stdout.count("\n") == 600
    assert "killed by its seccomp filter" not in inst.logtext()
