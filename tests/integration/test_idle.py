"""test_idle.py: an idle instance gives back what it does not need: pickup runs only while maildrop has work."""
import time

import pytest

from conftest import BIN, require, run
from mailinstance import TEST_USER, pid_alive, wait_for, wake_pickup

MASTER_CF = """\
cleanup   unix  n       -       n       -       0       cleanup
pickup    unix  n       -       n       60      1       pickup
"""
MESSAGE = "Subject: idle\n\nbody\n"
LINGER = 5  # PICKUP_LINGER_SEC in src/pickup/main.c


def test_pickup_exits_when_idle_and_comes_back_for_mail(mail_instance):
    require((BIN / "pickup").exists() and (BIN / "cleanup").exists(), f"pickup or cleanup is not built in {BIN}")
    inst = mail_instance(master_cf=MASTER_CF)
    inst.start()
    # The master's first wakeup (at start) runs pickup, which finds maildrop empty and leaves.
    wait_for(lambda: inst.daemon_pids("pickup") == [], 10, "no pickup process")
    time.sleep(1.0)
    assert inst.daemon_pids("pickup") == []

    # postdrop's wakeup has the master start pickup again, and the message is picked up at once.
    r = run("sendmail", "-C", inst.etc, "-f", "alice@example.test", TEST_USER, input=MESSAGE, env=inst.env)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: inst.queue_files("maildrop") == [], 20, "maildrop emptied")
    wait_for(lambda: len(inst.queue_files("incoming")) + len(inst.queue_files("active")) +
             len(inst.queue_files("deferred")) >= 1 or "from=<alice@example.test>" in inst.logtext(),
             20, "the message queued")
    # Right after a file it lingers (a burst reuses one process) ...
    pids = inst.daemon_pids("pickup")
    assert len(pids) == 1
    wake_pickup(inst)
    time.sleep(0.5)
    assert pid_alive(pids[0])
    # ... and the first wakeup that finds maildrop empty after that goes.
    time.sleep(LINGER)
    wake_pickup(inst)
    wait_for(lambda: not pid_alive(pids[0]), 10, "pickup to exit once maildrop stayed empty")
    assert "warning" not in inst.logtext() and "fatal" not in inst.logtext()
