"""test_postqueue.py: postqueue -p/-j listings and postsuper -d/-h/-H/-r on real queue files."""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import run, tool
from mailinstance import TEST_USER

MASTER_CF = "cleanup   unix  n       -       n       -       0       cleanup\n"
HEADING = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"


@pytest.fixture
def inst(mail_instance):
    i = mail_instance(master_cf=MASTER_CF)
    i.start()
    i.stop()  # the layout stays; the queue is now only files
    return i


def inject(inst, sender, *rcpts, body="Subject: q\n\nhello\n"):
    r = run("queue-inject", "-c", inst.etc, "-n", "-f", sender, *rcpts, input=body)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_empty_queue(inst):
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Mail queue is empty\n"
    assert inst.cmd("postqueue", "-j").stdout == ""
    assert run("mailq", "-C", inst.etc).stdout == "Mail queue is empty\n"
    assert run("sendmail", "-C", inst.etc, "-bp").stdout == "Mail queue is empty\n"


def test_listing_layout(inst):
    body = "Subject: q\n\n" + "x" * 1500 + "\n"
    a = inject(inst, "alice@example.test", "r1@example.test", "r2@example.test", body=body)
    b = inject(inst, "", f"{TEST_USER}@localhost")
    assert run("postsuper", "-c", inst.etc, "-h", b).returncode == 0
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == HEADING
    size_a = (inst.spool / "incoming" / a).stat().st_size  # at least the content
    m = re.fullmatch(rf"{a} +(\d+) (\w\w\w \w\w\w [ \d]\d \d\d:\d\d:\d\d)  alice@example\.test", lines[1])
    assert m, lines[1]
    size = int(m.group(1))
    # As in Postfix: the queue ID left-aligned in 11 columns, the size right-aligned in 7, the arrival
    # time in 20, so the sender starts in column 41 (one left of the heading's "-Sender", as its
    # "--Size--" overflows the size column); a longer queue ID pushes the line right, never cuts it.
    assert lines[1] == f"{a:<11} {size:>7} {m.group(2):<20} alice@example.test", lines[1]
    if len(a) <= 11:
        assert lines[1].index("alice@") == 41, lines[1]
    assert 1500 < size < size_a
    assert time.strftime("%a %b %e", time.localtime()) in lines[1]
    assert lines[2] == " " * 41 + "r1@example.test"
    assert lines[3] == " " * 41 + "r2@example.test"
    assert lines[4] == ""
    assert re.fullmatch(rf"{b}! +\d+ .{{20}} MAILER-DAEMON", lines[5]), lines[5]
    assert lines[6] == " " * 41 + f"{TEST_USER}@localhost"
    assert lines[7] == ""
    assert lines[8] == f"-- {(size + int(lines[5].split()[1])) // 1024} Kbytes in 2 Requests."
    assert lines[9:] == [""]

    r = inst.cmd("postqueue", "-j")
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["queue_name"] for o in objs] == ["incoming", "hold"]
    assert objs[0]["queue_id"] == a and objs[0]["sender"] == "alice@example.test"
    assert objs[0]["message_size"] == size and objs[0]["forced_expire"] is False
    assert isinstance(objs[0]["arrival_time"], int) and abs(objs[0]["arrival_time"] - time.time()) < 120
    assert objs[0]["recipients"] == [{"address": "r1@example.test"}, {"address": "r2@example.test"}]
    assert objs[1]["sender"] == "" and objs[1]["recipients"] == [{"address": f"{TEST_USER}@localhost"}]


def fill_deferred(inst, n):
    r = subprocess.run([tool("fill_deferred"), "-c", str(inst.etc), "-n", str(n)], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, **inst.env))
    assert r.returncode == 0, r.stderr
    return inst.queue_files("deferred")


def test_listing_of_many_messages_and_a_long_envelope(inst):
    """The listing reads a queue's files in windows, by more than one thread, and each file's envelope
    from a first chunk: the entries still come in queue ID order with one heading, and an envelope longer
    than the first chunk (many recipients) is read whole."""
    deferred = fill_deferred(inst, 700)
    assert len(deferred) == 700
    rcpts = [f"recipient-number-{i:03d}-with-a-long-local-part@example.test" for i in range(150)]
    big = inject(inst, "bulk@example.test", *rcpts)
    assert (inst.spool / "incoming" / big).stat().st_size > 2 * 4096  # 150 x (32-byte slot + address)
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(HEADING) == 1 and r.stdout.startswith(HEADING + "\n")
    entries = r.stdout[len(HEADING) + 1:].split("\n\n")
    trailer = entries.pop()
    ids = [e.split()[0] for e in entries]
    assert ids == [big] + deferred
    assert entries[0].split("\n")[1:] == [" " * 41 + a for a in rcpts]
    sizes = [int(e.split()[1]) for e in entries]
    assert trailer == f"-- {sum(sizes) // 1024} Kbytes in 701 Requests.\n"
    for e in entries[1:]:
        assert e.split("\n")[1] == " " * 41 + "someone@deferred.example", e

    r = inst.cmd("postqueue", "-j")
    assert r.returncode == 0, r.stderr
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["queue_id"] for o in objs] == [big] + deferred
    assert [o["message_size"] for o in objs] == sizes
    assert [a["address"] for a in objs[0]["recipients"]] == rcpts


def test_listing_skips_files_that_are_no_message(inst):
    """A name of the queue ID shape that holds no readable envelope (empty, truncated in the envelope,
    foreign) is skipped; a later message still lists."""
    good = inject(inst, "a@example.test", "b@example.test")
    data = (inst.spool / "incoming" / good).read_bytes()
    for name, content in (("1000001", b""), ("1000002", data[:40]), ("1000003", b"From x\n" * 2000)):
        (inst.spool / "deferred" / name).write_bytes(content)
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(HEADING + f"\n{good} ")
    assert r.stdout.endswith(" in 1 Request.\n")
    assert [json.loads(line)["queue_id"] for line in inst.cmd("postqueue", "-j").stdout.splitlines()] == [good]


def test_postsuper_hold_release_requeue_delete(inst):
    ids = [inject(inst, "s@example.test", f"r{i}@example.test") for i in range(3)]
    r = run("postsuper", "-c", inst.etc, "-h", "ALL")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "postsuper: Placed on hold: 3 messages"
    assert sorted(inst.queue_files("hold")) == sorted(ids) and inst.queue_files("incoming") == []
    r = run("postsuper", "-c", inst.etc, "-H", ids[0])
    assert r.returncode == 0
    assert f"postsuper: {ids[0]}: released from hold" in r.stderr
    assert "postsuper: Released from hold: 1 message\n" in r.stderr
    assert inst.queue_files("deferred") == [ids[0]]
    r = run("postsuper", "-c", inst.etc, "-r", ids[0])
    assert "postsuper: Requeued: 1 message" in r.stderr
    assert inst.queue_files("maildrop") == [ids[0]]
    # "-" reads the IDs from stdin; unknown IDs count nothing.
    r = run("postsuper", "-c", inst.etc, "-d", "-", input=f"{ids[1]}\n{ids[2]}\nABCDEF1\n")
    assert r.returncode == 0
    assert f"postsuper: {ids[1]}: removed" in r.stderr
    assert "postsuper: Deleted: 2 messages" in r.stderr
    assert inst.queue_files("hold") == []
    r = run("postsuper", "-c", inst.etc, "-d", "ALL", "maildrop")
    assert "postsuper: Deleted: 1 message\n" in r.stderr
    assert inst.cmd("postqueue", "-p").stdout == "Mail queue is empty\n"


def test_postsuper_is_root_only(inst):
    import subprocess
    from conftest import tool
    r = subprocess.run(["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups", "--",
                        tool("postsuper"), "-c", str(inst.etc), "-d", "ALL"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert r.stderr.strip() == "postsuper: fatal: use of this command is reserved for the superuser"


def test_flush_needs_a_running_qmgr(inst):
    r = inst.cmd("postqueue", "-f")
    assert r.returncode == 69
    assert "postqueue: fatal: Cannot flush mail queue - mail system is down" in r.stderr


def test_postfix_flush_runs_postqueue_f(mail_instance):
    inst = mail_instance()
    r = inst.postfix("flush")
    assert r.returncode != 0
    assert "Cannot flush mail queue - mail system is down" in r.stderr
    inst.start()
    r = inst.postfix("flush")
    assert r.returncode == 0, r.stderr
