"""test_qmgr_sched.py: qmgr's per-destination scheduling: concurrency and recipient limits per destination,
round-robin between destinations, dead destinations suspended, a share of the active queue kept for new mail."""
import re
import socket
import threading
import time

import pytest

from mailinstance import DEFAULT_MASTER_CF, wait_for
from smtp_peer import SmtpPeer
from test_mail_out import DELAYS, expect, submit

MASTER_CF = DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n"
BASE = "mynetworks = 127.0.0.1/32\n"


class CountingPeer(SmtpPeer):
    """Holds each message `hold` seconds before its final 250 and counts the transactions in progress
    (MAIL to the final reply): cached idle connections of the client do not count, deliveries do."""

    def __init__(self, hold):
        super().__init__()
        self.hold = hold
        self.in_tx = 0
        self.max_tx = 0
        self.done = []  # monotonic time of each final 250
        self.count_lock = threading.Lock()

    def _send(self, conn, line):
        if line == self.mail_reply:
            with self.count_lock:
                self.in_tx += 1
                self.max_tx = max(self.max_tx, self.in_tx)
        elif line.startswith("250 2.0.0 Ok: queued"):
            time.sleep(self.hold)
            with self.count_lock:
                self.in_tx -= 1
                self.done.append(time.monotonic())
        SmtpPeer._send(conn, line)


class ClosingPeer:
    """Accepts connections and closes them at once (a dead site, seen by the client as a lost connection);
    counts the connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def closers():
    made = []

    def make(p):
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def start(mail_instance, main_extra):
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE + main_extra)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    return inst


def sent_count(inst, qids):
    text = inst.logtext()
    return sum(1 for q in qids if re.search(rf"{q}: to=<[^>]*>, relay=127\.0\.0\.1.*status=sent", text))


def test_concurrency_per_destination_and_round_robin(mail_instance, closers):
    a, b = closers(CountingPeer(0.4)), closers(CountingPeer(0.4))
    inst = start(mail_instance, "smtp_destination_concurrency_limit = 2\n"
                                "smtp_destination_recipient_limit = 2\n"
                                "transport_maps = inline:{ "
                                f"{{a.example=smtp:[127.0.0.1]:{a.port}}}, "
                                f"{{b.example=smtp:[127.0.0.1]:{b.port}}} }}\n")
    qa = [submit(inst, f"user{i}@a.example", subject=f"to a {i}") for i in range(8)]
    # Five recipients of one message for b: at most two per delivery request.
    qb = [submit(inst, *(f"r{k}@b.example" for k in range(5)), subject="to b many")]
    qb += [submit(inst, f"user{i}@b.example", subject=f"to b {i}") for i in range(3)]
    wait_for(lambda: sent_count(inst, qa + qb) == len(qa + qb), 60, "every delivery")
    for qid in qa + qb:
        expect(inst, rf"{qid}: removed")

    # The limit holds per destination, never exceeded...
    assert a.max_tx <= 2 and b.max_tx <= 2, (a.max_tx, b.max_tx)
    # ...and it is per destination, not per transport: b's mail, queued behind all of a's, did not wait for
    # a's backlog (with one FIFO per transport, b's last delivery would come after a's last).
    assert len(a.done) == 8 and len(b.done) == 3 + 3
    assert max(b.done) < max(a.done), (b.done, a.done)
    # Recipient limit 2: the five recipients went in requests of 2, 2 and 1.
    many = sorted(len(m["rcpts"]) for m in b.messages() if any(r.startswith("r") for r in m["rcpts"]))
    assert many == [1, 2, 2], many
    assert sorted(r for m in b.messages() for r in m["rcpts"] if r.startswith("r")) == \
        [f"r{k}@b.example" for k in range(5)]


def test_dead_destination_is_suspended(mail_instance, closers):
    dead = closers(ClosingPeer())
    live = closers(CountingPeer(0))
    # Long backoff: nothing is retried while the test looks.
    inst = start(mail_instance, "minimal_backoff_time = 60s\nmaximal_backoff_time = 120s\n"
                                "transport_maps = inline:{ "
                                f"{{dead.example=smtp:[127.0.0.1]:{dead.port}}}, "
                                f"{{live.example=smtp:[127.0.0.1]:{live.port}}} }}\n")
    q1 = submit(inst, "one@dead.example", subject="first")
    expect(inst, rf"{q1}: to=<one@dead\.example>, relay=[^,]*, {DELAYS}, dsn=4\.4\.\d, "
                        r"status=deferred \(([^\n]*)\)")
    m = re.search(rf"{q1}: to=<one@dead\.example>, .*dsn=(4\.4\.\d), status=deferred \((.*)\)", inst.logtext())
    assert m, inst.logtext()
    dsn, reason = m.group(1), m.group(2)
    assert "delivery temporarily suspended" not in reason
    expect(inst, rf"destination \[127\.0\.0\.1\]:{dead.port} of transport smtp: delivery temporarily suspended")
    wait_for(lambda: q1 in inst.queue_files("deferred"), 20, "the first message in deferred/")
    tried = dead.connections
    assert tried >= 1

    # More mail for the dead destination is deferred at once, with the last error, without connecting.
    later = [submit(inst, f"n{i}@dead.example", subject=f"later {i}") for i in range(3)]
    for i, qid in enumerate(later):
        expect(inst, rf"{qid}: to=<n{i}@dead\.example>, relay=none, {DELAYS}, dsn={re.escape(dsn)}, "
                     rf"status=deferred \(delivery temporarily suspended: {re.escape(reason)}\)")
        wait_for(lambda: qid in inst.queue_files("deferred"), 20, "the message in deferred/")
    assert dead.connections == tried, (dead.connections, tried)
    r = inst.cmd("postqueue", "-p")
    assert f"(delivery temporarily suspended: {reason})" in r.stdout, r.stdout

    # Other destinations of the same transport are not affected.
    ok = submit(inst, "someone@live.example", subject="alive")
    expect(inst, rf"{ok}: to=<someone@live\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{live.port}, "
                 r".*status=sent")
    assert dead.connections == tried


def test_new_mail_is_not_stuck_behind_due_deferred_mail(mail_instance, closers):
    slow, fast = closers(CountingPeer(0.5)), closers(CountingPeer(0))
    inst = start(mail_instance, "qmgr_message_active_limit = 4\n"
                                "smtp_destination_concurrency_limit = 1\n"
                                "transport_maps = inline:{ "
                                f"{{slow.example=smtp:[127.0.0.1]:{slow.port}}}, "
                                f"{{fast.example=smtp:[127.0.0.1]:{fast.port}}} }}\n")
    inst.stop()
    # Six messages for the slow destination, due at once in deferred/ (as after an outage).
    backlog = []
    for i in range(6):
        r = inst.cmd("queue-inject", "-f", "sender@example.test", "-n", f"b{i}@slow.example",
                     input=f"Subject: backlog {i}\n\nbacklog\n")
        assert r.returncode == 0, r.stderr
        qid = r.stdout.strip()
        (inst.spool / "incoming" / qid).rename(inst.spool / "deferred" / qid)
        backlog.append(qid)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")

    # While the backlog drains, due deferred mail holds at most half of the active queue.
    most = 0
    stop = threading.Event()

    def watch():
        nonlocal most
        for _ in range(3000):  # bounded: 30 s of samples
            if stop.is_set():
                return
            most = max(most, len(set(inst.queue_files("active")) & set(backlog)))
            time.sleep(0.01)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    wait_for(lambda: any(q in inst.queue_files("active") for q in backlog) or slow.done, 20,
             "the backlog in the active queue")
    new = [submit(inst, f"n{i}@fast.example", subject=f"new {i}") for i in range(3)]
    wait_for(lambda: sent_count(inst, new) == 3, 30, "the new mail delivered")
    # Fresh mail got through while the slow backlog was still being delivered.
    assert len(slow.done) < 6, slow.done
    wait_for(lambda: sent_count(inst, backlog) == 6, 60, "the backlog delivered")
    stop.set()
    watcher.join(5)
    assert 1 <= most <= 2, most
