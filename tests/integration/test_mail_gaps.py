"""test_mail_gaps.py: the remaining mail-path behaviours: mail looping back, defer reasons in postqueue,
delay warnings, sendmail -bv, flushing one message or one site."""
import json
import os
import re
import smtplib
import subprocess

from conftest import BIN, run
from smtp_peer import SmtpPeer
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, JournalCapture, free_port, run_with_journal, wait_for

SMTP_CF = "smtp      unix  -       -       n       -       -       smtp\n"
MASTER_CF = DEFAULT_MASTER_CF + SMTP_CF
BASE = "mynetworks = 127.0.0.1/32\n"
SENDER = f"{TEST_USER}@mx.example.test"


def start(mail_instance, main_extra="", master_cf=MASTER_CF):
    inst = mail_instance(master_cf=master_cf, main_extra=BASE + main_extra)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    return inst


def submit(inst, rcpt, sender=SENDER, subject="gap test"):
    """Send one message over SMTP; returns the queue ID from the 250 reply."""
    def connect():
        try:
            return smtplib.SMTP("127.0.0.1", inst.port, timeout=10)
        except OSError:
            return None
    c = wait_for(connect, 20, f"smtpd on port {inst.port}")
    with c:
        c.ehlo("client.example")
        c.mail(sender)
        code, msg = c.rcpt(rcpt)
        assert code == 250, msg
        code, msg = c.data(f"From: <{sender}>\nTo: <{rcpt}>\nSubject: {subject}\n\nbody\n")
        assert code == 250, msg
    m = re.search(r"queued as ([0-9A-F]+)", msg.decode())
    assert m, msg
    return m.group(1)


def test_mail_looping_back_is_deferred_with_a_hint(mail_instance):
    # The trap: example.net is routed to this very instance but is not in mydestination.
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE)
    inst.postconf(f"transport_maps = inline:{{ {{example.net=smtp:[127.0.0.1]:{inst.port}}} }}")
    inst.start()
    qid = submit(inst, "bob@example.net")
    reason = ("mail for example.net loops back to myself (if this host is the final destination for "
              "example.net, add it to mydestination; otherwise fix relayhost, transport_maps or the MX "
              "records of example.net)")
    inst.wait_log(rf"postfix-test/smtp\[\d+\]: warning: {qid}: host 127\.0\.0\.1\[127\.0\.0\.1\] greeted me "
                  rf"with my own hostname mx\.example\.test: {re.escape(reason)}")
    inst.wait_log(rf"{qid}: to=<bob@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{inst.port}, .*"
                  rf"dsn=4\.4\.6, status=deferred \({re.escape(reason)}\)")
    wait_for(lambda: qid in inst.queue_files("deferred"), 20, "the message in deferred/")
    # Nothing was delivered through the loop: the only message ever queued is the original one.
    assert len(re.findall(r": client=", inst.logtext())) == 1
    assert "status=sent" not in inst.logtext()


def submit_many(inst, *rcpts, sender=SENDER):
    c = wait_for(lambda: _connect(inst), 20, f"smtpd on port {inst.port}")
    with c:
        c.ehlo("client.example")
        c.mail(sender)
        for rcpt in rcpts:
            code, msg = c.rcpt(rcpt)
            assert code == 250, msg
        code, msg = c.data(f"From: <{sender}>\nSubject: several\n\nbody\n")
        assert code == 250, msg
    return re.search(r"queued as ([0-9A-F]+)", msg.decode()).group(1)


def _connect(inst):
    try:
        return smtplib.SMTP("127.0.0.1", inst.port, timeout=10)
    except OSError:
        return None


def test_postqueue_shows_defer_reasons(mail_instance):
    dead = free_port()
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE)
    inst.postconf("transport_maps = inline:{ "
                  f"{{dead.example=smtp:[127.0.0.1]:{dead}}}, {{loop.example=smtp:[127.0.0.1]:{inst.port}}} }}")
    inst.start()
    qid = submit_many(inst, "a@dead.example", "b@dead.example", "c@loop.example")
    for rcpt in ("a@dead", "b@dead", "c@loop"):
        try:
            inst.wait_log(rf"{qid}: to=<{rcpt}\.example>, .*status=deferred")
        except AssertionError:
            raise AssertionError(inst.logtext())
    wait_for(lambda: qid in inst.queue_files("deferred"), 20, "the message in deferred/")
    inst.stop()
    # A deferred message without a defer log beside it (the listing learns which have one from a single
    # read of defer/): no reason line for it, its neighbour keeps its reasons.
    r = run("queue-inject", "-c", inst.etc, "-n", "-f", "other@example.test", "d@example.test",
            input="Subject: other\n\nhi\n")
    assert r.returncode == 0, r.stderr
    other = r.stdout.strip()
    os.rename(inst.spool / "incoming" / other, inst.spool / "deferred" / other)
    assert qid in inst.queue_files("defer") and other not in inst.queue_files("defer")
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.split("\n", 1)[1].split("\n\n")  # after the heading line
    [entry] = [e for e in blocks if e.startswith(f"{other} ")]
    assert entry.split("\n")[1:] == [" " * 41 + "d@example.test"]
    objs = [json.loads(line) for line in inst.cmd("postqueue", "-j").stdout.splitlines()]
    assert [o["queue_id"] for o in objs] == sorted([qid, other])
    assert [o["recipients"] for o in objs if o["queue_id"] == other] == [[{"address": "d@example.test"}]]
    os.unlink(inst.spool / "deferred" / other)

    refused = f"connect to 127.0.0.1[127.0.0.1]:{dead}: Connection refused"
    loop = ("mail for loop.example loops back to myself (if this host is the final destination for "
            "loop.example, add it to mydestination; otherwise fix relayhost, transport_maps or the MX "
            "records of loop.example)")
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[1].startswith(f"{qid} ")
    indent = " " * 41
    # Postfix's layout: a reason is right-aligned to end in column 78, or starts in column 1 when longer;
    # it is printed once for the recipients after it that share it, in queue file order.
    assert lines[2:8] == [" " * (76 - len(refused)) + f"({refused})", indent + "a@dead.example",
                          indent + "b@dead.example", f"({loop})", indent + "c@loop.example", ""]
    assert lines[8] == "-- 0 Kbytes in 1 Request."

    r = inst.cmd("postqueue", "-j")
    assert r.returncode == 0, r.stderr
    [entry] = [json.loads(line) for line in r.stdout.splitlines()]
    assert entry["queue_name"] == "deferred" and entry["queue_id"] == qid
    assert entry["recipients"] == [{"address": "a@dead.example", "delay_reason": refused},
                                   {"address": "b@dead.example", "delay_reason": refused},
                                   {"address": "c@loop.example", "delay_reason": loop}]


def reports(inst):
    """The multipart/report messages in the test user's mbox."""
    import email
    import email.policy
    import mailbox
    path = inst.mail_spool / TEST_USER
    if not path.exists():
        return []
    out = []
    for m in mailbox.mbox(str(path), create=False):
        msg = email.message_from_bytes(m.as_bytes(), policy=email.policy.compat32)
        if msg.get_content_type() == "multipart/report":
            out.append(msg)
    return out


def test_delay_warning_sent_once(mail_instance):
    dead = free_port()
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE + "delay_warning_time = 1s\n")
    inst.postconf(f"transport_maps = inline:{{ {{dead.example=smtp:[127.0.0.1]:{dead}}} }}")
    inst.start()
    qid = submit(inst, "bob@dead.example")
    m = inst.wait_log(rf"{qid}: sender delay notification: ([0-9A-F]+)", timeout=30)
    inst.wait_log(rf"{m.group(1)}: to=<{re.escape(SENDER)}>, relay=local, .*status=sent")
    [warning] = wait_for(lambda: reports(inst), 10, "the delay warning in the mailbox")
    assert warning["Subject"] == "Delayed Mail (still being retried)"
    assert warning["To"] == SENDER
    assert warning["Return-Path"] == "<>"
    status = warning.get_payload()[1].as_string()
    assert "Action: delayed" in status and "Final-Recipient: rfc822; bob@dead.example" in status
    assert "Status: 4.4.1" in status
    # The marker is durable (trace/QID, docs/QUEUE_FORMAT.md): later retries send no more.
    assert (inst.spool / "trace" / qid).exists()
    attempts = lambda: len(re.findall(rf"{qid}: to=<bob@dead\.example>.*status=deferred", inst.logtext()))
    seen = attempts()
    wait_for(lambda: attempts() >= seen + 2, 30, "two more delivery attempts")
    assert len(re.findall(rf"{qid}: sender delay notification", inst.logtext())) == 1
    assert len(reports(inst)) == 1
    # Once delivered, the message and its per-message logs (the marker included) are gone.
    peer = SmtpPeer()
    try:
        inst.stop()
        inst.postconf(f"transport_maps = inline:{{ {{dead.example=smtp:[127.0.0.1]:{peer.port}}} }}")
        inst.start()
        inst.wait_log(rf"{qid}: to=<bob@dead\.example>, relay=127\.0\.0\.1.*status=sent", timeout=30)
        inst.wait_log(rf"{qid}: removed", timeout=30)
    finally:
        peer.close()
    assert not (inst.spool / "trace" / qid).exists()
    assert not (inst.spool / "defer" / qid).exists()


REFUSED_ROOT = "sendmail: fatal: User root(0) is not allowed to submit mail"
CATALOG_SUBMIT_REFUSED = "0f5f70b482d44ba49c27d525938010a0"


def test_submit_refusal_goes_to_the_maillog_and_the_journal(mail_instance):
    inst = mail_instance(main_extra="authorized_submit_users = !root, static:anyone\n")
    inst.log.touch()
    msg = "Subject: refused\n\nbody\n"
    r = run("sendmail", "-C", inst.etc, TEST_USER, input=msg, env={"POSTD_LOG": f"file:{inst.log}"})
    assert r.returncode == 75
    assert r.stderr.strip() == REFUSED_ROOT  # stderr as before: one line, the command's own format
    assert re.search(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postfix-test/sendmail\[\d+\]: fatal: User root\(0\) "
                     r"is not allowed to submit mail$", inst.logtext(), re.M), inst.logtext()
    r = run("postdrop", "-c", inst.etc, input="", env={"POSTD_LOG": f"file:{inst.log}"})
    assert r.returncode == 75
    assert "postfix-test/postdrop[" in inst.logtext()

    # Under systemd the line reaches the journal with the catalog entry's MESSAGE_ID.
    proc, entries = run_with_journal([BIN / "sendmail", "-C", inst.etc, TEST_USER], input=msg)
    assert proc.returncode == 75 and proc.stderr.strip() == REFUSED_ROOT
    [e] = entries
    assert e["MESSAGE"] == "fatal: User root(0) is not allowed to submit mail"
    assert e["MESSAGE_ID"] == CATALOG_SUBMIT_REFUSED
    assert e["SYSLOG_IDENTIFIER"] == "postfix-test/sendmail"
    assert e["POSTFIX_INSTANCE"] == "postfix-test" and e["POSTFIX_SERVICE"] == "sendmail"
    assert inst.queue_files("maildrop") == []


def test_flush_one_message_and_one_site(mail_instance):
    dead = free_port()
    slow = "minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\n"  # no retry on its own during the test
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE + slow)
    inst.postconf(f"transport_maps = inline:{{ {{a.example=smtp:[127.0.0.1]:{dead}}}, "
                  f"{{b.example=smtp:[127.0.0.1]:{dead}}} }}")
    inst.start()
    qa = submit(inst, "x@a.example")
    qb = submit(inst, "y@B.Example")
    for qid in (qa, qb):
        wait_for(lambda: qid in inst.queue_files("deferred"), 20, f"{qid} in deferred/")
    peer = SmtpPeer()
    try:
        inst.stop()
        inst.postconf(f"transport_maps = inline:{{ {{a.example=smtp:[127.0.0.1]:{peer.port}}}, "
                      f"{{b.example=smtp:[127.0.0.1]:{peer.port}}} }}")
        inst.start()
        wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")

        r = inst.cmd("postqueue", "-i", qa)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        inst.wait_log(rf"{qa}: to=<x@a\.example>, relay=127\.0\.0\.1.*status=sent")
        inst.wait_log(rf"{qa}: removed")
        assert qb in inst.queue_files("deferred")
        assert [m["rcpts"] for m in peer.messages()] == [["x@a.example"]]

        r = inst.cmd("postqueue", "-i", qa)  # gone now
        assert r.returncode == 0 and r.stderr.strip() == f"postqueue: warning: {qa}: no such message in the deferred queue"
        r = inst.cmd("postqueue", "-s", "a.example")  # nothing left for that site
        assert r.returncode == 0 and "no deferred mail for site a.example" in r.stderr
        assert qb in inst.queue_files("deferred")

        r = inst.cmd("postqueue", "-s", "b.example")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        inst.wait_log(rf"{qb}: to=<y@B\.Example>, relay=127\.0\.0\.1.*status=sent")
        inst.wait_log(rf"{qb}: removed")
        assert inst.cmd("postqueue", "-s", "bad site").returncode != 0
    finally:
        peer.close()


CATALOG_LOOPS_BACK = "b0266b6c5c4a4b22ad00843db0ed87d8"


def test_loop_warning_carries_the_catalog_id_in_the_journal(mail_instance):
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE)
    inst.postconf(f"transport_maps = inline:{{ {{example.net=smtp:[127.0.0.1]:{inst.port}}} }}")
    journal = JournalCapture()
    try:
        env = dict(os.environ, POSTD_LOG="journal")
        r = subprocess.run(journal.argv(BIN / "postfix", "-c", inst.etc, "start"), env=env,
                           capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, r.stderr
        qid = submit(inst, "bob@example.net")
        e = journal.wait(lambda e: e.get("MESSAGE_ID") == CATALOG_LOOPS_BACK, 30, "the loop warning")
        assert e["SYSLOG_IDENTIFIER"] == "postfix-test/smtp"
        assert e["POSTFIX_QUEUE_ID"] == qid and e["POSTFIX_INSTANCE"] == "postfix-test"
        assert e["PRIORITY"] == "4"
        assert e["MESSAGE"].startswith(f"warning: {qid}: host 127.0.0.1[127.0.0.1] greeted me with my own "
                                       "hostname mx.example.test: mail for example.net loops back to myself")
        journal.wait(lambda e: e.get("POSTFIX_QUEUE_ID") == qid and e.get("POSTFIX_STATUS") == "deferred"
                     and e.get("POSTFIX_DSN") == "4.4.6", 30, "the deferred line")
    finally:
        inst.stop()
        journal.close()
