"""test_anvil.py: per-client limits counted by anvil, junk commands, the error tarpit and the session deadline.

Real instances, real clients on 127.0.0.x. The test clients are inside mynetworks, which the exception
list defaults to, so every test of a limit empties smtpd_client_event_limit_exceptions.
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import time

import pytest

from mailinstance import DEFAULT_MASTER_CF, free_port, wait_for
from smtpraw import Raw

NO_EXCEPTIONS = "smtpd_client_event_limit_exceptions =\nsmtpd_error_sleep_time = 0\n"
HOST = "mx.example.test"


def start(mail_instance, extra, master_cf=None, exceptions=NO_EXCEPTIONS):
    kw = {"master_cf": master_cf} if master_cf else {}
    inst = mail_instance(main_extra=exceptions + extra, **kw)
    inst.start()
    return inst


def greeting(port, source="127.0.0.1"):
    c = Raw(port, source=source)
    return c, c.reply()


def quit_session(c):
    assert c.cmd("QUIT").startswith("221")
    c.close()


def count_lines(inst, pattern):
    return len(re.findall(pattern, inst.logtext()))


def test_connection_count_limit(mail_instance):
    inst = start(mail_instance, "smtpd_client_connection_count_limit = 2\n")
    a, ga = greeting(inst.port)
    b, gb = greeting(inst.port)
    assert ga.startswith("220 ") and gb.startswith("220 "), (ga, gb)
    c, gc = greeting(inst.port)
    assert gc == f"421 4.7.0 {HOST} Error: too many connections from 127.0.0.1"
    assert c.closed()
    c.close()
    inst.wait_log(rf"smtpd\[\d+\]: warning: Connection concurrency limit exceeded: 3 from unknown\[127\.0\.0\.1\] "
                  rf"for service {inst.port}\n")
    # Another client address is counted apart.
    d, gd = greeting(inst.port, source="127.0.0.2")
    assert gd.startswith("220 "), gd
    quit_session(d)
    # A session that ends gives its slot back (anvil hears the disconnect right after the 221).
    quit_session(a)

    def slot_free():
        e, ge = greeting(inst.port)
        if ge.startswith("220 "):
            return e
        e.close()
        return None

    e = wait_for(slot_free, 10, "a free connection slot after QUIT", interval=0.2)
    quit_session(e)
    quit_session(b)


def test_killed_smtpd_gives_its_connections_back(mail_instance):
    inst = start(mail_instance, "smtpd_client_connection_count_limit = 2\n")
    a, ga = greeting(inst.port)
    b, gb = greeting(inst.port)
    assert ga.startswith("220 ") and gb.startswith("220 ")
    pids = inst.daemon_pids("smtpd")
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    a.close()
    b.close()

    # No disconnect was ever sent: anvil undoes the dead process's connects when its connection closes.
    def served():
        c, g = greeting(inst.port)
        ok = g.startswith("220 ")
        c.close()
        return ok

    wait_for(served, 20, "a greeting after smtpd was killed", interval=0.3)
    assert "Connection concurrency limit exceeded" not in inst.logtext()


def test_exceptions_exempt(mail_instance):
    # The default exception list is $mynetworks: 127.0.0.1 is not limited at all.
    inst = start(mail_instance, "smtpd_client_connection_count_limit = 1\n", exceptions="")
    a, ga = greeting(inst.port)
    b, gb = greeting(inst.port)
    assert ga.startswith("220 ") and gb.startswith("220 "), (ga, gb)
    quit_session(a)
    quit_session(b)
    inst.stop()
    # An explicit list: 127.0.0.2 is exempt, 127.0.0.1 is not.
    inst = start(mail_instance, "smtpd_client_connection_count_limit = 1\n",
                 exceptions="smtpd_client_event_limit_exceptions = 127.0.0.2/32\nsmtpd_error_sleep_time = 0\n")
    x, gx = greeting(inst.port, source="127.0.0.2")
    y, gy = greeting(inst.port, source="127.0.0.2")
    assert gx.startswith("220 ") and gy.startswith("220 "), (gx, gy)
    a, ga = greeting(inst.port)
    b, gb = greeting(inst.port)
    assert ga.startswith("220 "), ga
    assert gb == f"421 4.7.0 {HOST} Error: too many connections from 127.0.0.1"
    for c in (x, y, a):
        quit_session(c)
    b.close()
    assert "127.0.0.2" not in "".join(re.findall(r"limit exceeded.*", inst.logtext()))


def test_connection_rate_limit(mail_instance):
    inst = start(mail_instance, "smtpd_client_connection_rate_limit = 2\nanvil_rate_time_unit = 60s\n")
    for _ in range(2):
        c, g = greeting(inst.port)
        assert g.startswith("220 "), g
        quit_session(c)
    c, g = greeting(inst.port)
    assert g == f"421 4.7.0 {HOST} Error: too many connections from 127.0.0.1"
    c.close()
    inst.wait_log(rf"warning: Connection rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] for service {inst.port}\n")
    assert "concurrency limit" not in inst.logtext()


def test_message_rate_limit(mail_instance):
    inst = start(mail_instance, "smtpd_client_message_rate_limit = 2\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.mail("a@example.test")[0] == 250
        s.rset()
        assert s.mail("a@example.test")[0] == 250
        s.rset()
        assert s.mail("a@example.test") == (450, b"4.7.1 Error: too much mail from 127.0.0.1")
    # The rate is the client's, not the session's.
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.mail("a@example.test")[0] == 450
    inst.wait_log(r"warning: Message delivery request rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] "
                  rf"for service {inst.port}\n")
    inst.wait_log(r"Message delivery request rate limit exceeded: 4 from")


def test_recipient_rate_limit(mail_instance):
    inst = start(mail_instance, "smtpd_client_recipient_rate_limit = 2\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=20) as s:
        s.ehlo("client.example")
        assert s.mail("a@example.test")[0] == 250
        assert s.rcpt("root@localhost")[0] == 250
        assert s.rcpt("postmaster@localhost")[0] == 250
        assert s.rcpt("root@localhost") == (450, b"4.7.1 Error: too many recipients from 127.0.0.1")
    inst.wait_log(r"warning: Recipient address rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] "
                  rf"for service {inst.port}\n")


DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


@pytest.mark.skipif(not os.path.exists(DOVECOT), reason="dovecot-core is not installed")
def test_auth_rate_limit(mail_instance, tmp_path):
    import tempfile

    from test_sasl import Dovecot, plain
    import pathlib

    root = pathlib.Path(tempfile.mkdtemp(prefix="postd-dovecot-", dir="/tmp"))
    os.chmod(root, 0o755)
    dove = Dovecot(root / "dovecot", inet_port=free_port())
    dove.start()
    try:
        inst = start(mail_instance, "smtpd_client_auth_rate_limit = 2\nsmtpd_sasl_auth_enable = yes\n"
                     f"smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:{dove.inet_port}\n")
        c, g = greeting(inst.port)
        assert g.startswith("220 ")
        assert "AUTH PLAIN" in c.cmd("EHLO client.example")
        for _ in range(2):
            r = c.cmd("AUTH PLAIN " + plain("alice", "wrong-password"))
            assert r.startswith("535 5.7.8"), r
        assert c.cmd("AUTH PLAIN " + plain("alice")) == "450 4.7.1 Error: too many AUTH commands from 127.0.0.1"
        quit_session(c)
        inst.wait_log(r"warning: AUTH command rate limit exceeded: 3 from unknown\[127\.0\.0\.1\] "
                      rf"for service {inst.port}\n")
    finally:
        dove.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_anvil_down_warns_once_and_mail_flows(mail_instance):
    master_cf = "".join(l + "\n" for l in DEFAULT_MASTER_CF.splitlines() if not l.startswith("anvil"))
    assert "anvil" not in master_cf
    inst = start(mail_instance, "smtpd_client_connection_count_limit = 1\n", master_cf=master_cf)
    a, ga = greeting(inst.port)
    b, gb = greeting(inst.port)
    assert ga.startswith("220 ") and gb.startswith("220 "), (ga, gb)
    quit_session(a)
    quit_session(b)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.sendmail("sender@example.test", ["postd-test@localhost"], b"Subject: anvil down\r\n\r\nstill flows\r\n")
    inst.wait_log(rf"{inst.name}/local\[\d+\]: .*to=<postd-test@localhost>.*status=sent", timeout=30)
    warnings = re.findall(r"smtpd\[(\d+)\]: warning: problem talking to service \S+/private/anvil: ",
                          inst.logtext())
    # One warning per smtpd process for the whole outage, not one per session.
    assert warnings and len(warnings) == len(set(warnings)), warnings


def test_junk_commands_count_as_errors(mail_instance):
    inst = start(mail_instance, "smtpd_junk_command_limit = 2\nsmtpd_hard_error_limit = 3\n")
    c, g = greeting(inst.port)
    assert g.startswith("220 ")
    # EHLO and three NOOPs: the fourth junk command is the first error (Postfix counts "more than" the limit).
    assert c.cmd("EHLO client.example").startswith("250")
    for _ in range(3):
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    # A delivered message starts both counts again.
    assert c.cmd("MAIL FROM:<a@example.test>").startswith("250")
    assert c.cmd("RCPT TO:<postd-test@localhost>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    assert c.cmd("Subject: junk\r\n\r\nbody\r\n.").startswith("250 2.0.0 Ok: queued as")
    # Junk 0..2 are free, 3, 4 and 5 are errors 1..3: the third error ends the session.
    for _ in range(5):
        assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert c.reply() == f"421 4.7.0 {HOST} Error: too many errors"
    assert c.closed()
    c.close()
    inst.wait_log(r"too many errors after NOOP from unknown\[127\.0\.0\.1\]")


def test_error_sleep_after_soft_limit(mail_instance):
    inst = start(mail_instance, "smtpd_soft_error_limit = 2\nsmtpd_hard_error_limit = 10\n",
                 exceptions="smtpd_error_sleep_time = 1s\n")
    c, g = greeting(inst.port)
    assert g.startswith("220 ")
    t0 = time.monotonic()
    assert c.cmd("XYZZY").startswith("502")
    assert c.cmd("XYZZY").startswith("502")
    assert time.monotonic() - t0 < 0.8  # 0 and 1 errors before these replies: no pause yet
    t0 = time.monotonic()
    assert c.cmd("XYZZY").startswith("502")  # two errors made before it: the error reply waits
    assert time.monotonic() - t0 >= 0.9
    t0 = time.monotonic()
    assert c.cmd("NOOP") == "250 2.0.0 Ok"  # a good reply is not held back
    assert time.monotonic() - t0 < 0.8
    quit_session(c)


def test_session_deadline_ends_a_drip_feeding_client(mail_instance):
    inst = start(mail_instance, "postd_smtpd_session_deadline = 3s\nsmtpd_timeout = 2s\n")
    c, g = greeting(inst.port)
    assert g.startswith("220 ")
    c.sock.setblocking(False)
    t0 = time.monotonic()
    got = b""
    # One byte every 0.5 s: smtpd_timeout (2 s) never runs out, the session deadline does.
    for _ in range(40):
        try:
            c.sock.send(b"N")
        except OSError:
            break
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            try:
                chunk = c.sock.recv(4096)
            except BlockingIOError:
                time.sleep(0.05)
                continue
            except OSError:
                chunk = b""
            if not chunk:
                break
            got += chunk
        if b"\r\n" in got:
            break
    elapsed = time.monotonic() - t0
    c.close()
    assert got.startswith(f"421 4.4.2 {HOST} Error: session time limit exceeded\r\n".encode()), got
    assert 2.0 <= elapsed < 10, elapsed
    inst.wait_log(r"session time limit \(postd_smtpd_session_deadline = 3s\) exceeded after CONNECT from "
                  r"unknown\[127\.0\.0\.1\]")
    assert "timeout after" not in inst.logtext()


def test_smtpd_timeout_counts_from_the_last_input(mail_instance):
    """Input at 0.5 s intervals for twice smtpd_timeout keeps the session; then silence ends it one
    smtpd_timeout after the last byte (the timer moves only when it fires, never on each read)."""
    inst = start(mail_instance, "smtpd_timeout = 2s\n")
    c, g = greeting(inst.port)
    assert g.startswith("220 ")
    c.sock.sendall(b"HELO ")
    for _ in range(8):
        c.sock.sendall(b"a")
        time.sleep(0.5)
    c.sock.sendall(b".example\r\n")
    last = time.monotonic()
    assert c.reply().startswith("250"), "the session ended while the client was typing"
    c.sock.settimeout(10)
    got = c.sock.recv(4096)
    quiet = time.monotonic() - last
    c.close()
    assert got.startswith(f"421 4.4.2 {HOST} Error: timeout exceeded".encode()), got
    assert 1.7 <= quiet < 6, quiet
    inst.wait_log(r"timeout after HELO from unknown\[127\.0\.0\.1\]")


def seccomp(pid):
    text = open(f"/proc/{pid}/status").read()
    mode = re.search(r"^Seccomp:\s+(\d+)", text, re.M)
    n = re.search(r"^Seccomp_filters:\s+(\d+)", text, re.M)
    return int(mode.group(1)), int(n.group(1)) if n else None


def test_anvil_restart_is_transparent(mail_instance):
    inst = start(mail_instance, "smtpd_client_connection_count_limit = 1\n")
    a, ga = greeting(inst.port)
    assert ga.startswith("220 ")
    pids = wait_for(lambda: inst.daemon_pids("anvil"), 10, "the anvil process")
    for pid in pids:
        mode, n = seccomp(pid)
        assert mode == 2 and (n is None or n >= 2), (pid, mode, n)  # the baseline and its own allow-list
        os.kill(pid, signal.SIGKILL)
    # The old connect died with anvil; smtpd connects again at once, without a warning.
    quit_session(a)
    b, gb = greeting(inst.port)
    assert gb.startswith("220 "), gb
    c, gc = greeting(inst.port)
    assert gc == f"421 4.7.0 {HOST} Error: too many connections from 127.0.0.1"
    c.close()
    quit_session(b)
    assert "problem talking to service" not in inst.logtext()
    assert wait_for(lambda: set(inst.daemon_pids("anvil")) - set(pids), 10, "a new anvil process")


def test_anvil_logs_statistics(mail_instance):
    inst = start(mail_instance, "smtpd_client_connection_count_limit = 5\nanvil_status_update_time = 1s\n")
    a, ga = greeting(inst.port)
    b, gb = greeting(inst.port, source="127.0.0.3")
    c, gc = greeting(inst.port, source="127.0.0.3")
    assert ga.startswith("220 ") and gb.startswith("220 ") and gc.startswith("220 ")
    for s in (a, b, c):
        quit_session(s)
    inst.wait_log(rf"anvil\[\d+\]: statistics: max connection rate 2/60s for \({inst.port}:127\.0\.0\.3\) at ")
    inst.wait_log(rf"anvil\[\d+\]: statistics: max connection count 2 for \({inst.port}:127\.0\.0\.3\) at ")
    inst.wait_log(r"anvil\[\d+\]: statistics: max cache size 2 at ")
