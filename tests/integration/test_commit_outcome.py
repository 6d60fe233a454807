"""test_commit_outcome.py: a submission that times out has a definite outcome (issue 12, item 5): cleanup
cancels for real a message whose source gave up before it was renamed to its queue ID, and smtpd never says
451 for a message that cleanup then queues (the client's retry would be a duplicate)."""
import os
import shutil
import smtplib
import socket
import threading
import time

import pytest

import mailproto
from mailinstance import MAIL_OWNER, TEST_USER, wait_for
from mailproto import Submission
from test_cleanup import CLEANUP_ONLY, REMOTE, incoming_entries, sock

SMTPD_ONLY = "{port}    inet  n       -       n       -       -       smtpd\n"


@pytest.fixture
def inst(mail_instance):
    i = mail_instance(master_cf=CLEANUP_ONLY)
    i.start()
    return i


def ended_submission(inst, extra):
    """Open, envelope, content, then {req=end} and `extra` bytes in the same write."""
    s = Submission(sock(inst))
    assert s.status == 0
    s.envelope("sender@example.org", ["user@example.test"], **REMOTE)
    s.content(b"Subject: abort\n\nbody\n")
    s.conn.send_raw(mailproto.encode([("req", "end")]) + extra)
    return s


def test_abort_right_after_end_is_not_queued(inst):
    s = ended_submission(inst, mailproto.encode([("req", "abort")]))
    try:
        reply = s.conn.recv()
    finally:
        s.close()
    assert (reply.get("status"), reply.get("dsn")) == ("4", "4.3.0"), reply
    assert "not queued" in reply.get("reason")
    inst.wait_log(f"{s.queue_id}: cancelled by the submitting client before it was queued; removed")
    assert incoming_entries(inst) == []


def test_source_gone_after_end_is_not_queued(inst):
    """Before, a source that left after {req=end} (a pickup that timed out) still had its message queued,
    and then submitted it again."""
    s = ended_submission(inst, b"")
    s.conn.sock.shutdown(socket.SHUT_WR)
    s.close()
    inst.wait_log(f"{s.queue_id}: cancelled by the submitting client before it was queued; removed")
    wait_for(lambda: incoming_entries(inst) == [], 10, "incoming/ to be empty")


def test_abort_after_the_answer_changes_nothing(inst):
    s = ended_submission(inst, b"")
    try:
        reply = s.conn.recv()
        assert reply.get("status") == "0", reply
        try:
            s.conn.send([("req", "abort")])  # too late: queued is queued
        except OSError:
            pass  # cleanup may have closed already: the answer ends the conversation
    finally:
        s.close()
    time.sleep(0.2)  # nothing to wait for: the file must simply stay
    assert incoming_entries(inst) == [reply.get("queue_id")]


class SlowCleanup:
    """A stand-in for cleanup on public/cleanup that does not answer {req=end} until it gets {req=abort},
    then answers `final_status` (0: it was too late to cancel, the message is queued)."""

    def __init__(self, inst, final_status):
        self.path = inst.spool / "public" / "cleanup"
        self.final_status = final_status
        self.got_abort = threading.Event()
        if self.path.exists():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o666)
        shutil.chown(self.path, MAIL_OWNER)
        self.sock.listen(4)
        self.sock.settimeout(30)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        c, _ = self.sock.accept()
        conn = mailproto.Conn.__new__(mailproto.Conn)
        conn.sock = c
        c.settimeout(30)
        try:
            assert conn.recv().get("req") == "open"
            conn.send([("status", 0), ("queue_id", "SLOW0001")])
            for _ in range(100000):
                req = conn.recv().get("req")
                if req == "end":
                    break
            m = conn.recv()  # nothing but the abort may come now
            if m.get("req") == "abort":
                self.got_abort.set()
                if self.final_status == 0:
                    conn.send([("status", 0), ("queue_id", "SLOW0001")])
                else:
                    conn.send([("status", 4), ("dsn", "4.3.0"),
                               ("reason", "Error: timeout while queueing the message; it was not queued")])
            time.sleep(1)
        except (OSError, AssertionError):
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("final_status, expect", [
    (0, (250, b"2.0.0 Ok: queued as SLOW0001")),
    (4, (451, b"4.3.0 Error: timeout while queueing the message; it was not queued")),
])
def test_smtpd_waits_for_the_definite_answer(mail_instance, final_status, expect):
    # ipc_timeout shortens smtpd's wait for cleanup from 120 s to 2 s.
    inst = mail_instance(master_cf=SMTPD_ONLY, main_extra="mynetworks = 127.0.0.1/32\nipc_timeout = 2s\n")
    inst.start()
    fake = SlowCleanup(inst, final_status)
    try:
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=20) as s:
            s.ehlo("client.example")
            assert s.mail("sender@example.org")[0] == 250
            assert s.rcpt(f"{TEST_USER}@localhost")[0] == 250
            start = time.monotonic()
            reply = s.data(b"Subject: slow\r\n\r\nbody\r\n")
            waited = time.monotonic() - start
    finally:
        fake.close()
    assert fake.got_abort.is_set()
    assert reply == expect, reply
    assert 1.5 < waited < 10, waited
    inst.wait_log(r"SLOW0001: no answer from cleanup in 2 s after the end of the message; asked it to cancel")


def test_abort_at_any_moment_outcome_matches_answer(inst):
    """Aborts that land while the file waits, while its batch is being synced, or after the rename: whatever
    the moment, the answer is the truth: status 0 and the file is in incoming/, status 4 and it is not."""
    import random
    results = []

    def one(delay):
        s = ended_submission(inst, b"")
        try:
            time.sleep(delay)
            try:
                s.conn.send([("req", "abort")])
            except OSError:
                pass
            reply = s.conn.recv()
            results.append((s.queue_id, reply.get("status"), reply.get("queue_id")))
        finally:
            s.close()

    rnd = random.Random(12)
    threads = [threading.Thread(target=one, args=(rnd.random() * 0.03,)) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 40
    queued = sorted(qid for qid, status, _ in results if status == "0")
    assert all(status in ("0", "4") for _, status, _ in results), results
    assert all(rq == qid for qid, status, rq in results if status == "0")
    # A cancelled file still in its batch may keep its temporary name until the batch is over (such names
    # are never delivered, and recovery removes them); then it goes.
    wait_for(lambda: incoming_entries(inst) == queued, 10, f"incoming/ to hold exactly {queued}")
