"""test_idle.py: an idle instance gives back what it does not need: pickup runs only while maildrop has work."""
import socket
import time

from conftest import BIN, require, run
from mailinstance import TEST_USER, pid_alive, wait_for

MASTER_CF = """\
cleanup   unix  n       -       n       -       0       cleanup
pickup    unix  n       -       n       60      1       pickup
"""
MESSAGE = "Subject: idle\n\nbody\n"
LINGER = 5  # PICKUP_LINGER_USEC in src/pickup/main.c


def test_pickup_exits_when_idle_and_comes_back_for_mail(mail_instance):
    require((BIN / "pickup").exists() and (BIN / "cleanup").exists(), f"pickup or cleanup is not built in {BIN}")
    inst = mail_instance(master_cf=MASTER_CF)
    inst.start()
    # The master's first wakeup (at start) runs pickup, which finds maildrop empty and leaves.
    wait_for(lambda: inst.daemon_pids("pickup") == [], 10, "no pickup process")

    # postdrop's wakeup has the master start pickup again, and the message is picked up at once.
    # (No pick can come before this moment; pickup counts its linger in whole seconds, so it lingers
    # more than LINGER - 1 s after the pick.)
    before_send = time.monotonic()
    r = run("sendmail", "-C", inst.etc, "-f", "alice@example.test", TEST_USER, input=MESSAGE, env=inst.env)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: inst.queue_files("maildrop") == [], 20, "maildrop emptied")
    inst.wait_log(r"\b([0-9A-F]+): uid=0 from=<alice@example\.test>")
    # Right after a file it lingers (a burst reuses one process) ...
    pids = inst.daemon_pids("pickup")
    assert len(pids) == 1
    # Two wakeups, each answered (pickup closes the connection) before the next is accepted: the
    # first has been fully handled, scan included, by the time the second is answered.
    assert wake_and_wait(inst) and wake_and_wait(inst)
    if time.monotonic() - before_send < LINGER - 1.5:
        assert pid_alive(pids[0]), "pickup left right after a file instead of lingering"
    # ... and the first wakeup that finds maildrop empty after that goes.
    wait_for(lambda: wake_and_wait(inst) and not pid_alive(pids[0]), LINGER + 10,
             "pickup to exit once maildrop stayed empty", interval=0.5)
    assert time.monotonic() - before_send > LINGER - 1
    assert "warning" not in inst.logtext() and "fatal" not in inst.logtext()


def wake_and_wait(inst):
    """A wakeup as postdrop sends it, then the end of the connection: a pickup has taken and handled it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(inst.spool / "public" / "pickup"))
        try:
            s.sendall(b"W")
            return s.recv(1) == b""
        except (BrokenPipeError, ConnectionResetError):
            return True  # closed before our byte arrived: handled all the same
