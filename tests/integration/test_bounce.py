"""test_bounce.py: failed mail comes back to its sender as an RFC 3464 report, and is never lost on the way."""
import email
import email.policy
import mailbox
import os
import re
import signal

from conftest import run
from mailinstance import TEST_USER, wait_for

BASE_CF = """\
qmgr      unix  n       -       n       300     1       qmgr
local     unix  -       n       n       -       -       local
"""
CLEANUP_CF = "cleanup   unix  n       -       n       -       0       cleanup\n"
BOUNCE_CF = "bounce    unix  -       -       n       -       0       bounce\n"
MASTER_CF = BASE_CF + CLEANUP_CF + BOUNCE_CF

SENDER = f"{TEST_USER}@mx.example.test"
MESSAGE = "Subject: original {tag}\nFrom: {sender}\nMessage-ID: <{tag}@example.test>\n\nbody of {tag}\n"


def inject(inst, *rcpts, sender=SENDER, tag="x", extra=()):
    r = run("queue-inject", "-c", inst.etc, "-f", sender, *extra, *rcpts,
            input=MESSAGE.format(tag=tag, sender=sender))
    assert r.returncode == 0, r.stderr
    qid = r.stdout.strip()
    assert re.fullmatch(r"[0-9A-F]{6,21}", qid), r.stdout
    return qid


def start(mail_instance, master_cf=MASTER_CF, **kw):
    inst = mail_instance(master_cf=master_cf, **kw)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    return inst


def reports(inst):
    """The delivery status notifications in the test user's mbox, parsed."""
    path = inst.mail_spool / TEST_USER
    if not path.exists():
        return []
    box = mailbox.mbox(str(path), factory=None, create=False)
    out = []
    for m in box:
        msg = email.message_from_bytes(m.as_bytes(), policy=email.policy.compat32)
        if msg.get_content_type() == "multipart/report":
            out.append(msg)
    return out


def dsn_parts(report):
    parts = report.get_payload()
    assert [p.get_content_type() for p in parts][:2] == ["text/plain", "message/delivery-status"]
    blocks = parts[1].get_payload()  # the per-message block, then one per recipient
    return parts, blocks[0], blocks[1:]


def test_unknown_user_returned_to_sender(mail_instance):
    inst = start(mail_instance)
    qid = inject(inst, "nosuchuser@mx.example.test", tag="unknown")
    inst.wait_log(rf'{qid}: to=<nosuchuser@mx\.example\.test>, relay=local, .*dsn=5\.1\.1, status=bounced')
    m = inst.wait_log(rf"{qid}: sender non-delivery notification: ([0-9A-F]+)")
    qid2 = m.group(1)
    assert qid2 != qid
    inst.wait_log(rf"{qid}: removed")
    inst.wait_log(rf"{qid2}: to=<{re.escape(SENDER)}>, relay=local, .*dsn=2\.0\.0, status=sent")
    inst.wait_log(rf"{qid2}: removed")
    wait_for(lambda: reports(inst), 10, "the report in the mailbox")

    [report] = reports(inst)
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report["To"] == SENDER
    assert report["From"].startswith("MAILER-DAEMON@mx.example.test")
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["Return-Path"] == "<>"  # sent from the null sender
    parts, per_msg, per_rcpt = dsn_parts(report)
    text = parts[0].get_payload()
    assert "This is the mail system at host mx.example.test." in text
    assert '<nosuchuser@mx.example.test>: unknown user: "nosuchuser"' in text
    assert per_msg["Reporting-MTA"] == "dns; mx.example.test"
    assert per_msg["X-Postfix-Queue-ID"] == qid
    assert per_msg["Arrival-Date"]
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Final-Recipient"] == "rfc822; nosuchuser@mx.example.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Diagnostic-Code"] == 'X-Postfix; unknown user: "nosuchuser"'
    # The whole original message comes back (it is far below bounce_size_limit).
    assert parts[2].get_content_type() == "message/rfc822"
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "original unknown"
    assert "body of unknown" in returned.get_payload()
    # Nothing is left behind: no queue file, no per-message log.
    wait_for(lambda: not any(inst.queue_files(q) for q in ("incoming", "active", "deferred", "bounce",
                                                            "defer")), 10, "an empty queue")


def test_partial_failure_reports_only_the_failed_recipient(mail_instance):
    inst = start(mail_instance)
    qid = inject(inst, SENDER, "ghost@mx.example.test", tag="partial")
    inst.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+")
    inst.wait_log(rf"{qid}: removed")
    wait_for(lambda: reports(inst), 15, "the report in the mailbox")
    [report] = reports(inst)
    _, _, per_rcpt = dsn_parts(report)
    assert [r["Final-Recipient"] for r in per_rcpt] == ["rfc822; ghost@mx.example.test"]


def test_large_message_returns_headers_only(mail_instance):
    inst = start(mail_instance, main_extra="bounce_size_limit = 1000\n")
    r = run("queue-inject", "-c", inst.etc, "-f", SENDER, "nobody-here@mx.example.test",
            input="Subject: big one\n\n" + ("x" * 70 + "\n") * 100)
    qid = r.stdout.strip()
    inst.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+")
    wait_for(lambda: reports(inst), 15, "the report in the mailbox")
    [report] = reports(inst)
    parts = report.get_payload()
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Subject: big one" in parts[2].get_payload()
    assert "xxxxxxxx" not in parts[2].get_payload()


def test_no_bounce_to_the_null_sender(mail_instance):
    inst = start(mail_instance)
    qid = inject(inst, "nosuchuser@mx.example.test", sender="", tag="nullsender")
    inst.wait_log(rf"{qid}: to=<nosuchuser@mx\.example\.test>, .*status=bounced")
    inst.wait_log(rf"{qid}: sender non-delivery notification: not sent \(null sender\)")
    inst.wait_log(rf"{qid}: removed")
    assert not re.search(rf"{qid}: sender non-delivery notification: [0-9A-F]", inst.logtext())
    assert reports(inst) == []
    assert inst.queue_files("bounce") == []


def test_expired_message_bounces_with_4_4_7(mail_instance):
    inst = start(mail_instance, main_extra="transport_maps = inline:{ {faraway.example=nosuch:} }\n"
                                          "maximal_queue_lifetime = 1h\n")
    qid = inject(inst, "x@faraway.example", tag="old", extra=("-a", "7200"))
    inst.wait_log(rf"{qid}: to=<x@faraway\.example>, .*status=deferred \(mail transport unavailable\)")
    inst.wait_log(rf"{qid}: from=<{re.escape(SENDER)}>, status=expired, returned to sender")
    inst.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+")
    inst.wait_log(rf"{qid}: removed")
    wait_for(lambda: reports(inst), 15, "the report in the mailbox")
    [report] = reports(inst)
    _, _, per_rcpt = dsn_parts(report)
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; x@faraway.example"
    assert per_rcpt[0]["Status"] == "4.4.7"
    assert per_rcpt[0]["Action"] == "failed"
    assert "message expired: mail transport unavailable" in per_rcpt[0]["Diagnostic-Code"]
    wait_for(lambda: inst.queue_files("defer") == [] and inst.queue_files("bounce") == [], 10,
             "the per-message logs removed")


def test_bounce_service_missing_keeps_the_message(mail_instance):
    inst = start(mail_instance, master_cf=BASE_CF + CLEANUP_CF)
    qid = inject(inst, "nosuchuser@mx.example.test", tag="kept")
    inst.wait_log(rf"{qid}: sender notification not sent: connect to private/bounce: .*master\.cf")
    wait_for(lambda: qid in inst.queue_files("deferred"), 10, "the message kept in deferred/")
    assert inst.queue_files("bounce") == [qid]
    assert f"{qid}: removed" not in inst.logtext()

    # The service comes back: the notification is sent once, then the message goes.
    inst.stop()
    (inst.etc / "master.cf").write_text(MASTER_CF)
    inst.start()
    inst.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+", timeout=30)
    inst.wait_log(rf"{qid}: removed")
    wait_for(lambda: reports(inst), 15, "the report in the mailbox")
    assert len(reports(inst)) == 1
    assert inst.queue_files("bounce") == []


def test_cleanup_unavailable_then_back(mail_instance):
    """bounce itself cannot queue the report: qmgr keeps everything and asks again later."""
    inst = start(mail_instance, master_cf=BASE_CF + BOUNCE_CF)
    qid = inject(inst, "nosuchuser@mx.example.test", tag="nocleanup")
    inst.wait_log(rf"{qid}: sender non-delivery notification not queued: connect to cleanup")
    inst.wait_log(rf"{qid}: sender notification not sent: bounce service failed")
    wait_for(lambda: qid in inst.queue_files("deferred"), 10, "the message kept in deferred/")
    # A bounce process killed outright changes nothing either. The one that failed above stays
    # idle (max_idle) until then: there must be one to kill, or this part would prove nothing.
    pids = inst.daemon_pids("bounce")
    assert pids, "no bounce process to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        inst.wait_log(rf"warning: process \S+/bounce pid {pid} killed by signal 9")
    assert inst.queue_files("bounce") == [qid]
    assert qid in inst.queue_files("deferred")

    inst.stop()
    (inst.etc / "master.cf").write_text(MASTER_CF)
    inst.start()
    inst.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+", timeout=30)
    inst.wait_log(rf"{qid}: removed")
    wait_for(lambda: reports(inst), 15, "the report in the mailbox")
    assert len(reports(inst)) == 1
