"""test_many_rcpts.py: messages with thousands of recipients keep every one of them: through smtpd, through
sendmail/pickup, and through qmgr's delivery requests (issue 12: no 250 for a partly handed-over message)."""
import re
import smtplib
import subprocess

import pytest

from conftest import run, tool
from mailinstance import DEFAULT_MASTER_CF, wait_for, wake_pickup

SMTPD_CLEANUP = ("{port}    inet  n       -       n       -       -       smtpd\n"
                 "cleanup   unix  n       -       n       -       0       cleanup\n")
PICKUP_CLEANUP = ("cleanup   unix  n       -       n       -       0       cleanup\n"
                  "pickup    unix  n       -       n       60      1       pickup\n")
BASE = "mynetworks = 127.0.0.1/32\nsmtpd_recipient_limit = 5000\n"
N = 2000  # x3 attributes (rcpt, orcpt, notify): far beyond what one IPC message holds (4096)


def rcpt(i, domain="many.example"):
    return f"user{i}@{domain}"


def dump(inst, queue, qid):
    r = subprocess.run([tool("qfile-dump"), str(inst.spool / queue / qid)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("content:\n", 1)[0].splitlines()


def smtp_send(inst, n, dsn=True):
    """One message to n recipients, each with ORCPT and NOTIFY unless not dsn; returns the final reply
    (code, text)."""
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
        s.ehlo("client.example")
        code, _ = s.mail("sender@example.org")
        assert code == 250
        for i in range(n):
            opts = ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;orig{i}@example.org"] if dsn else []
            code, text = s.rcpt(rcpt(i), opts)
            assert code == 250, (i, code, text)
        return s.data(b"Subject: many\r\n\r\nhello\r\n")


def test_smtp_thousands_of_rcpts_with_orcpt_and_notify_all_queued(mail_instance):
    inst = mail_instance(master_cf=SMTPD_CLEANUP, main_extra=BASE)
    inst.start()
    code, text = smtp_send(inst, N)
    assert code == 250, text
    qid = re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode()
    lines = dump(inst, "incoming", qid)
    rcpts = [line for line in lines if line.startswith("rcpt=")]
    assert len(rcpts) == N, f"{len(rcpts)} of {N} recipients in the queue file"
    # Every recipient with its own ORCPT and NOTIFY (SUCCESS|FAILURE = bits 1 and 2), in order.
    for i in range(N):
        k = lines.index(f"rcpt={rcpt(i)} orig={rcpt(i)} notify=6 state=pending")
        assert lines[k + 1] == f"orcpt=rfc822;orig{i}@example.org", (i, lines[k + 1])


def test_pickup_thousands_of_rcpts_all_queued(mail_instance):
    inst = mail_instance(master_cf=PICKUP_CLEANUP)
    inst.start()
    n = 3000  # rcpt + notify each: 6000 attributes
    rcpts = [rcpt(i) for i in range(n)]
    r = run("sendmail", "-C", inst.etc, "-N", "success,delay", "-f", "alice@example.test", *rcpts,
            input="Subject: many\n\nhello\n", env=inst.env, timeout=60)
    assert r.returncode == 0, r.stderr
    wake_pickup(inst)
    m = inst.wait_log(r": ([0-9A-F]+): uid=0 from=<alice@example\.test>")
    qid = m.group(1)
    wait_for(lambda: inst.queue_files("maildrop") == [] and qid in inst.queue_files("incoming"), 30,
             f"{qid} moved from maildrop/ to incoming/")
    lines = dump(inst, "incoming", qid)
    got = [line for line in lines if line.startswith("rcpt=")]
    assert got == [f"rcpt={a} orig={a} notify=10 state=pending" for a in rcpts], \
        f"{len(got)} of {n} recipients in the queue file"


def test_thousands_of_rcpts_to_one_destination_all_delivered(mail_instance):
    """qmgr groups recipients per destination up to the recipient limit; a limit above what one request
    and its reply hold makes more requests, and every recipient is delivered once, none deferred. (1300
    plain recipients fit the old envelope, but not the agent's reply of four attributes each.)"""
    inst = mail_instance(master_cf=DEFAULT_MASTER_CF, main_extra=BASE + (
        "transport_maps = inline:{ {many.example=discard:gone} }\n"
        "discard_destination_recipient_limit = 5000\n"))
    inst.start()
    n = 1300
    code, text = smtp_send(inst, n, dsn=False)
    assert code == 250, text
    qid = re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode()
    sent = re.compile(re.escape(qid) + r": to=<user(\d+)@many\.example>.*status=sent \(gone\)")
    wait_for(lambda: len(sent.findall(inst.logtext())) >= n, 60, f"{n} recipients of {qid} delivered")
    inst.wait_log(re.escape(qid) + ": removed", 30)
    log = inst.logtext()
    assert sorted(int(i) for i in sent.findall(log)) == list(range(n)), "each recipient exactly once"
    assert not re.search(re.escape(qid) + r": to=.*status=deferred", log), "no recipient deferred"
