"""test_qmgr_local.py: qmgr and local end to end: queue files in, mailboxes and log lines out."""
import os
import pathlib
import pwd
import re
import shutil

import pytest

from conftest import run
from mailinstance import TEST_USER, wait_for

MASTER_CF = """\
qmgr      unix  n       -       n       300     1       qmgr
local     unix  -       n       n       -       -       local
cleanup   unix  n       -       n       -       0       cleanup
bounce    unix  -       -       n       -       0       bounce
"""

MESSAGE = """\
Received: from client.example.test by mx.example.test
Subject: test {tag}
From: sender@example.test

Hello {tag}.
From the body: this line must be quoted in an mbox.
"""

DELAYS = r"delay=\d+(\.\d\d?)?, delays=\d+(\.\d\d?)?/\d+(\.\d\d?)?/\d+(\.\d\d?)?/\d+(\.\d\d?)?"


def inject(inst, *rcpts, sender="sender@example.test", tag="x", extra=()):
    r = run("queue-inject", "-c", inst.etc, "-f", sender, *extra, *rcpts, input=MESSAGE.format(tag=tag))
    assert r.returncode == 0, r.stderr
    qid = r.stdout.strip()
    assert re.fullmatch(r"[0-9A-F]{6,21}", qid), r.stdout
    return qid


def start(mail_instance, **kw):
    inst = mail_instance(master_cf=MASTER_CF, **kw)
    inst.start()
    wake_qmgr(inst)
    return inst


def wake_qmgr(inst):
    """The master starts qmgr at once (its first wakeup); wait until it runs."""
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")


def queue_empty(inst):
    return not any(inst.queue_files(q) for q in ("incoming", "active", "deferred"))


def test_mbox_delivery_and_removal(mail_instance):
    inst = start(mail_instance)
    qid = inject(inst, f"{TEST_USER}@mx.example.test", tag="mbox")
    inst.wait_log(rf"{qid}: from=<sender@example.test>, size=\d+, nrcpt=1 \(queue active\)")
    inst.wait_log(rf"{qid}: to=<{TEST_USER}@mx.example.test>, relay=local, {DELAYS}, dsn=2\.0\.0, "
                  r"status=sent \(delivered to mailbox\)")
    inst.wait_log(rf"{qid}: removed")
    box = inst.mbox(TEST_USER).decode()
    assert box.startswith("From sender@example.test ")
    assert "Return-Path: <sender@example.test>\n" in box
    assert f"Delivered-To: {TEST_USER}@mx.example.test\n" in box
    assert "Subject: test mbox\n" in box
    assert "\n>From the body: this line must be quoted" in box
    assert box.endswith("mbox.\n\n")
    st = (inst.mail_spool / TEST_USER).stat()
    assert st.st_uid == pwd.getpwnam(TEST_USER).pw_uid
    assert st.st_mode & 0o777 == 0o600
    assert not (inst.mail_spool / f"{TEST_USER}.lock").exists()
    wait_for(lambda: queue_empty(inst), 10, "empty queue")

    # A second message is appended, not written over the first one.
    qid2 = inject(inst, f"{TEST_USER}@mx.example.test", tag="second")
    inst.wait_log(rf"{qid2}: removed")
    box = inst.mbox(TEST_USER).decode()
    assert box.count("\nFrom sender@example.test ") == 1 and box.startswith("From sender@example.test ")
    assert "Subject: test second\n" in box


def test_maildir_delivery(mail_instance):
    home = pathlib.Path(pwd.getpwnam(TEST_USER).pw_dir)
    maildir = home / "Maildir"
    existed = maildir.exists()
    before = set((maildir / "new").iterdir()) if existed and (maildir / "new").exists() else set()
    inst = start(mail_instance, main_extra="home_mailbox = Maildir/\n")
    try:
        qid = inject(inst, f"{TEST_USER}@mx.example.test", tag="maildir")
        inst.wait_log(rf"{qid}: to=<{TEST_USER}@mx.example.test>, relay=local, {DELAYS}, dsn=2\.0\.0, "
                      r"status=sent \(delivered to maildir\)")
        inst.wait_log(rf"{qid}: removed")
        new = set((maildir / "new").iterdir()) - before
        assert len(new) == 1
        f = new.pop()
        text = f.read_text()
        assert text.startswith("Return-Path: <sender@example.test>\nDelivered-To: ")
        assert "Subject: test maildir\n" in text
        assert "\nFrom the body" in text  # Maildir never quotes
        assert f.stat().st_uid == pwd.getpwnam(TEST_USER).pw_uid
        assert not any((maildir / "tmp").iterdir())
        assert inst.mbox(TEST_USER) == b""
    finally:
        if existed:
            for p in set((maildir / "new").iterdir()) - before:
                p.unlink()
        else:
            shutil.rmtree(maildir, ignore_errors=True)


def test_alias_to_user_and_file(mail_instance):
    inst = mail_instance(master_cf=MASTER_CF)
    outdir = inst.root / "files"
    outdir.mkdir()
    os.chmod(outdir, 0o777)  # the file is written as default_privs (nobody): root owns the aliases
    out = outdir / "archive.mbox"
    with open(inst.aliases, "a") as f:
        f.write(f"team: {TEST_USER}, {out}\nboss: team\nloop1: loop2\nloop2: loop1\n")
    inst.newaliases()
    inst.start()
    wake_qmgr(inst)
    qid = inject(inst, "boss@mx.example.test", tag="alias")
    inst.wait_log(rf"{qid}: to=<{TEST_USER}@mx.example.test>, orig_to=<boss@mx.example.test>, relay=local, "
                  rf"{DELAYS}, dsn=2\.0\.0, status=sent \(delivered to mailbox\)")
    # A file destination is logged under the recipient's address, the path in the reason (Postfix's form).
    inst.wait_log(rf"{qid}: to=<boss@mx.example.test>, (orig_to=<boss@mx.example.test>, )?relay=local, "
                  rf"{DELAYS}, dsn=2\.0\.0, status=sent \(delivered to file: {re.escape(str(out))}\)")
    inst.wait_log(rf"{qid}: removed")
    assert "Subject: test alias" in inst.mbox(TEST_USER).decode()
    assert "Subject: test alias" in out.read_text()
    assert out.stat().st_uid == pwd.getpwnam("nobody").pw_uid

    # An alias loop ends: bounced, never delivered in circles.
    qid = inject(inst, "loop1@mx.example.test", tag="loop")
    inst.wait_log(rf"{qid}: to=<loop1@mx.example.test>, relay=local, {DELAYS}, dsn=5\.4\.6, status=bounced")
    inst.wait_log(rf"{qid}: removed")


def test_unknown_user_bounced(mail_instance):
    inst = start(mail_instance)
    qid = inject(inst, "nosuchuser@mx.example.test", tag="unknown")
    inst.wait_log(rf'{qid}: to=<nosuchuser@mx.example.test>, relay=local, {DELAYS}, dsn=5\.1\.1, '
                  r'status=bounced \(unknown user: "nosuchuser"\)')
    inst.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+")
    inst.wait_log(rf"{qid}: removed")
    # The notification to sender@example.test stays queued (no smtp service here); the original goes.
    wait_for(lambda: not any(qid in inst.queue_files(q) for q in ("incoming", "active", "deferred")), 10,
             "the original message gone")


def test_mail_loop_delivered_to(mail_instance):
    inst = start(mail_instance)
    rcpt = f"{TEST_USER}@mx.example.test"
    r = run("queue-inject", "-c", inst.etc, rcpt,
            input=f"Delivered-To: {rcpt}\nSubject: looping\n\nbody\n")
    qid = r.stdout.strip()
    inst.wait_log(rf"{qid}: to=<{rcpt}>, relay=local, {DELAYS}, dsn=5\.4\.6, "
                  rf"status=bounced \(mail forwarding loop for {rcpt}\)")
    inst.wait_log(rf"{qid}: removed")
    assert b"looping" not in inst.mbox(TEST_USER)


def test_missing_transport_deferred(mail_instance):
    inst = start(mail_instance, main_extra="transport_maps = inline:{ {faraway.example=nosuch:} }\n")
    qid = inject(inst, "someone@faraway.example", tag="deferred")
    inst.wait_log(rf"warning: connect to transport private/nosuch: .*master\.cf")
    inst.wait_log(rf"{qid}: to=<someone@faraway.example>, relay=none, {DELAYS}, dsn=4\.3\.0, "
                  r"status=deferred \(mail transport unavailable\)")
    wait_for(lambda: qid in inst.queue_files("deferred"), 10, "the message in deferred/")
    assert qid not in inst.queue_files("active")
    # The retry (minimal_backoff_time = 2s) happens, and the file is still there afterwards.
    wait_for(lambda: len(re.findall(rf"{qid}: to=<someone@faraway.example>.*status=deferred",
                                    inst.logtext())) >= 2, 20, "a second attempt")
    wait_for(lambda: qid in inst.queue_files("deferred"), 10, "the message back in deferred/")
    assert f"{qid}: removed" not in inst.logtext()


def test_mixed_recipients_and_flush(mail_instance):
    inst = start(mail_instance, main_extra="transport_maps = inline:{ {faraway.example=nosuch:} }\n"
                                          "minimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n")
    qid = inject(inst, f"{TEST_USER}@mx.example.test", "x@faraway.example", tag="mixed")
    inst.wait_log(rf"{qid}: to=<{TEST_USER}@mx.example.test>, .*status=sent")
    inst.wait_log(rf"{qid}: to=<x@faraway.example>, .*status=deferred")
    wait_for(lambda: qid in inst.queue_files("deferred"), 10, "the message in deferred/")
    # The delivered recipient is never delivered again, even when the queue is flushed.
    import mailproto
    with mailproto.Conn(inst.spool / "public" / "qmgr", timeout=10) as c:
        c.send([("req", "flush")])
        reply = c.recv()
    # A flush of everything: {status=0} and nothing else (a count comes only with queue_id or site).
    assert reply.attrs == [("status", b"0")], reply
    wait_for(lambda: len(re.findall(rf"{qid}: to=<x@faraway.example>.*status=deferred", inst.logtext())) >= 2,
             15, "the flushed retry")
    assert inst.mbox(TEST_USER).decode().count("Subject: test mixed") == 1


def test_expired_message_returned(mail_instance):
    inst = start(mail_instance, main_extra="transport_maps = inline:{ {faraway.example=nosuch:} }\n"
                                          "maximal_queue_lifetime = 1h\n")
    qid = inject(inst, "x@faraway.example", tag="old", extra=("-a", "7200"))
    inst.wait_log(rf"{qid}: to=<x@faraway.example>, .*status=deferred")
    inst.wait_log(rf"{qid}: from=<sender@example.test>, status=expired, returned to sender")
    inst.wait_log(rf"{qid}: removed")
    # The notification to sender@example.test stays queued (no smtp service here); the original goes.
    wait_for(lambda: not any(qid in inst.queue_files(q) for q in ("incoming", "active", "deferred")), 10,
             "the original message gone")


def test_scan_without_notification(mail_instance):
    inst = start(mail_instance)
    qid = inject(inst, f"{TEST_USER}@mx.example.test", tag="scan", extra=("-n",))
    # Found by the queue_run_delay (2s) scan of incoming/.
    inst.wait_log(rf"{qid}: removed", timeout=15)


def test_two_instances_side_by_side(mail_instance):
    a = start(mail_instance, name="postfix-a")
    b = start(mail_instance, name="postfix-b")
    qa = [inject(a, f"{TEST_USER}@mx.example.test", tag=f"a{i}") for i in range(5)]
    qb = [inject(b, f"{TEST_USER}@mx.example.test", tag=f"b{i}") for i in range(5)]
    for q in qa:
        a.wait_log(rf"{q}: removed")
    for q in qb:
        b.wait_log(rf"{q}: removed")
    box_a, box_b = a.mbox(TEST_USER).decode(), b.mbox(TEST_USER).decode()
    assert all(f"Subject: test a{i}\n" in box_a for i in range(5))
    assert all(f"Subject: test b{i}\n" in box_b for i in range(5))
    assert "Subject: test b" not in box_a and "Subject: test a" not in box_b
    assert "postfix-a/qmgr" in a.logtext() and "postfix-b" not in a.logtext()
