"""test_recovery_backlog.py: the master's queue recovery before READY=1 with a backlog (issue 12, item 7).

A few thousand messages left in active/ by a crash, big files (checked in chunks, not read whole), a
damaged big file, a half-written one: the master requeues and checks them all, moves the damaged one to
corrupt/, tells systemd to extend its start timeout (EXTEND_TIMEOUT_USEC=) while it works, and only then
says READY=1. Recovery runs with mail_owner's ids: a queue directory mail_owner cannot write stops it.
"""
import os
import pathlib
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import BIN, tool
from mailinstance import MAIL_OWNER, wait_for

# No qmgr: nothing moves the files while the test looks at them.
MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
"""
BACKLOG = 2000
BIG = 3 * 1024 * 1024  # over the 1 MiB a recovery check reads whole
# master.h MASTER_RECOVERY_NOTIFY_USEC
NOTIFY_INTERVAL_SEC = 1.0


class Notify:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []

    def until_ready(self, proc, limit=120):
        """Collect messages until READY=1 (or the master exits, or limit seconds pass)."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                if proc.poll() is not None:
                    return False
                continue
            self.msgs.append(dict(line.split("=", 1) for line in data.split("\n") if "=" in line))
            if self.msgs[-1].get("READY") == "1":
                return True
        return False


@pytest.fixture
def backlog(mail_instance):
    inst = mail_instance(master_cf=MASTER_CF, main_extra="message_size_limit = 0\n")
    inst.start()
    body = b"".join(b"%08d big message line\r\n" % i for i in range(BIG // 24))
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
        s.sendmail("sender@example.org", ["rcpt@example.net"], b"Subject: big\r\n\r\n" + body)
    inst.stop()
    big = wait_for(lambda: inst.queue_files("incoming"), 10, "the big message in incoming/")[0]
    r = subprocess.run([tool("fill_deferred"), "-c", str(inst.etc), "-n", str(BACKLOG)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, **inst.env))
    assert r.returncode == 0, r.stderr
    # A crash with everything in active/: each file goes back to incoming/ and is checked completely.
    for name in os.listdir(inst.spool / "deferred"):
        os.rename(inst.spool / "deferred" / name, inst.spool / "active" / name)
    # A big file damaged in the middle of its content, under a valid queue ID of its own.
    data = bytearray((inst.spool / "incoming" / big).read_bytes())
    data[len(data) // 2] ^= 0x20
    bad = "00001BADBAD"
    (inst.spool / "incoming" / bad).write_bytes(bytes(data))
    # A writer that died mid-write.
    (inst.spool / "incoming" / ".tmp.999.1.2").write_bytes(bytes(data[:1000]))
    for name in (bad, ".tmp.999.1.2"):
        shutil.chown(inst.spool / "incoming" / name, MAIL_OWNER, MAIL_OWNER)
    note = Notify(inst.root / "notify.sock")
    yield inst, note, big, bad
    note.sock.close()


def run_master(inst, note):
    env = dict(os.environ, **inst.env, NOTIFY_SOCKET=note.path)
    return subprocess.Popen([str(BIN / "master"), "-c", str(inst.etc), "-d"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_recovery_of_a_backlog_before_ready(backlog):
    inst, note, big, bad = backlog
    proc = run_master(inst, note)
    try:
        assert note.until_ready(proc), f"no READY=1; master: {proc.stderr.read() if proc.poll() is not None else ''}"
    finally:
        stop(proc)
    keys = [list(m) for m in note.msgs]
    ready_at = next(i for i, m in enumerate(note.msgs) if m.get("READY") == "1")
    extends = [i for i, m in enumerate(note.msgs) if "EXTEND_TIMEOUT_USEC" in m]
    assert extends and extends[0] < ready_at, keys
    assert all(int(note.msgs[i]["EXTEND_TIMEOUT_USEC"]) >= 10 * NOTIFY_INTERVAL_SEC * 1e6 for i in extends)

    lines = list(re.finditer(r"\[(\d+)\]: queue recovery: (\d+) complete, (\d+) back from active, (\d+) "
                             r"half-written removed, (\d+) corrupt, (\d+) left alone, in ([\d.]+) s",
                             inst.logtext()))
    assert lines, inst.logtext()[-2000:]
    line = lines[-1]  # this start's, after the fixture's own
    pid, complete, requeued, removed, corrupt, skipped = map(int, line.groups()[:6])
    assert (complete, requeued, removed, corrupt, skipped) == (BACKLOG + 1, BACKLOG, 1, 1, 0)
    assert pid != proc.pid  # a child of the master did it (with mail_owner's ids: see the next test)
    # While recovery ran, the master kept extending: one notice per interval (one-sided, so never flaky:
    # a recovery that took over two intervals kept the master waiting that long).
    if float(line.group(7)) > 2 * NOTIFY_INTERVAL_SEC:
        assert len(extends) >= 2, keys

    assert len(inst.queue_files("incoming")) == BACKLOG + 1 and big in inst.queue_files("incoming")
    assert inst.queue_files("active") == []
    assert inst.queue_files("corrupt") == [bad]
    assert not (inst.spool / "incoming" / ".tmp.999.1.2").exists()
    assert f"{bad}: corrupt queue file in incoming (checksum mismatch" in inst.logtext()


def test_recovery_runs_as_mail_owner(backlog):
    """incoming/ that only root may write: a root recovery would manage, mail_owner's cannot."""
    inst, note, big, bad = backlog
    incoming = inst.spool / "incoming"
    os.chown(incoming, 0, 0)
    try:
        proc = run_master(inst, note)
        try:
            assert not note.until_ready(proc, limit=60)
            proc.wait(30)
        finally:
            stop(proc)
        assert proc.returncode != 0
        assert re.search(r"queue recovery in .*: Permission denied \(recovery runs as mail_owner: postfix "
                         r"set-permissions", inst.logtext()), inst.logtext()[-2000:]
        assert (incoming / bad).exists()  # nothing was moved
    finally:
        shutil.chown(incoming, MAIL_OWNER, MAIL_OWNER)
