"""test_notify.py: the master's sd_notify protocol, read from a NOTIFY_SOCKET the test owns (no container needed).

READY=1 after recovery with STATUS= figures, STATUS= refreshed from the queue directories, WATCHDOG=1
from the event loop, RELOADING=1 + MONOTONIC_USEC then READY=1 on reload, STOPPING=1 on stop.
"""
import os
import pathlib
import re
import shutil
import socket
import sys
import tempfile
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))
from mailinstance import MailInstance  # noqa: E402

# No qmgr: nothing moves the files this test puts into deferred/, so the counts are exact.
MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
"""
WATCHDOG_USEC = 400000


class Notify:
    """The systemd side: a datagram socket collecting the master's messages."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []  # (monotonic arrival, {key: value})

    def poll(self, seconds):
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.msgs.append((time.monotonic(), fields))

    def wait(self, pred, what, limit=10, start=None):
        """The first message (from index start, else from now on) for which pred(fields) holds."""
        seen = len(self.msgs) if start is None else start
        end = time.monotonic() + limit
        while True:
            for i in range(seen, len(self.msgs)):
                if pred(self.msgs[i][1]):
                    self.last = i
                    return self.msgs[i][1]
            seen = len(self.msgs)
            if time.monotonic() > end:
                pytest.fail(f"no {what} within {limit}s; got {[f for _, f in self.msgs[-10:]]}")
            self.poll(0.1)


@pytest.fixture
def instance(monkeypatch):
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-notify-", dir="/tmp"))
    os.chmod(base, 0o755)
    inst = MailInstance(base / "i", name="postfix-notify", master_cf=MASTER_CF)
    note = Notify(base / "notify.sock")
    inst.env["NOTIFY_SOCKET"] = note.path
    inst.env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
    try:
        yield inst, note
    finally:
        inst.stop()
        note.sock.close()
        shutil.rmtree(base, ignore_errors=True)


def status_rx(port, active, deferred):
    return re.compile(rf"accepting on 127\.0\.0\.1:{port}; queue: {active} active, {deferred} deferred; \d+ processes")


def test_ready_status_watchdog_reload_stop(instance):
    inst, note = instance
    inst.start()
    ready = note.wait(lambda f: f.get("READY") == "1", "READY=1")
    # STATUS= with the figures came before (or with) READY=1, after the start-up status.
    statuses = [f["STATUS"] for _, f in note.msgs if "STATUS" in f]
    assert statuses[0].startswith("starting"), statuses
    assert status_rx(inst.port, 0, 0).fullmatch(statuses[-1]), statuses
    assert int(ready["MAINPID"]) == inst.master_pid()
    with socket.create_connection(("127.0.0.1", inst.port), timeout=5) as c:
        assert c.recv(100).startswith(b"220")

    # WATCHDOG=1 every WatchdogSec/2 (0.2 s) from the event loop: five in a row, then their pace (after a
    # first one, which may have waited in the socket while the test was not reading).
    note.wait(lambda f: f.get("WATCHDOG") == "1", "a first WATCHDOG=1")
    first = note.last + 1
    for n in range(5):
        note.wait(lambda f: f.get("WATCHDOG") == "1", f"WATCHDOG=1 number {n + 1}", limit=5, start=note.last + 1)
    dogs = [t for t, f in note.msgs[first:note.last + 1] if f.get("WATCHDOG") == "1"]
    assert len(dogs) == 5, dogs
    span = dogs[-1] - dogs[0]
    # Four intervals of about 0.2 s: not a burst (>= 0.1 s each on average), never late enough that
    # systemd would have killed the master (< WatchdogSec each on average).
    assert 0.4 <= span <= 4 * WATCHDOG_USEC / 1e6, dogs

    # Live figures: files appear in deferred/ (one hashed subdirectory too) and STATUS= follows.
    (inst.spool / "deferred" / "A1B2C3D4E5").write_text("x")
    (inst.spool / "deferred" / "F").mkdir(exist_ok=True)
    (inst.spool / "deferred" / "F" / "F1E2D3C4B5").write_text("x")
    (inst.spool / "deferred" / ".tmp.half-written").write_text("x")  # not a queue file: not counted
    note.wait(lambda f: status_rx(inst.port, 0, 2).fullmatch(f.get("STATUS", "")), "STATUS= with 2 deferred",
              limit=8)

    # Reload: RELOADING=1 with a current CLOCK_MONOTONIC stamp, then READY=1 again; same master.
    pid = inst.master_pid()
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    assert inst.postfix("reload").returncode == 0
    rel = note.wait(lambda f: f.get("RELOADING") == "1", "RELOADING=1")
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    stamp = int(rel["MONOTONIC_USEC"]) / 1e6
    assert before - 0.01 <= stamp <= after + 0.01, (before, stamp, after)
    note.wait(lambda f: f.get("READY") == "1", "READY=1 after the reload", start=note.last + 1)
    assert inst.master_pid() == pid

    # Stop: STOPPING=1 before the master exits.
    assert inst.postfix("stop").returncode == 0
    note.wait(lambda f: f.get("STOPPING") == "1", "STOPPING=1")


def test_disabled_inet_status(instance):
    """With master_service_disable = inet the status says there is no listener, not a stale address."""
    inst, note = instance
    inst.postconf("master_service_disable = inet")
    inst.start()
    note.wait(lambda f: f.get("READY") == "1", "READY=1")
    statuses = [f["STATUS"] for _, f in note.msgs if "STATUS" in f]
    assert re.fullmatch(r"no inet listeners; queue: 0 active, 0 deferred; \d+ processes", statuses[-1]), statuses
    assert "disabled by master_service_disable = inet" in inst.logtext()
