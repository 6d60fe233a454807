"""test_mail_out.py: mail out end to end, smtpd -> cleanup -> qmgr -> agents: transport_maps routes
(smtp, relay, local, error, discard), deferral then retry when the peer comes back, relayhost with
smtp_fallback_relay."""
import email
import email.policy
import mailbox
import re
import smtplib

import pytest

from mailinstance import DEFAULT_MASTER_CF, TEST_USER, free_port, wait_for
from smtp_peer import SmtpPeer

MASTER_CF = DEFAULT_MASTER_CF + (
    "smtp      unix  -       -       n       -       -       smtp\n"
    "relay     unix  -       -       n       -       -       smtp\n"
    "retry     unix  -       -       n       -       -       error\n")
BASE = "mynetworks = 127.0.0.1/32\n"
SENDER = f"{TEST_USER}@mx.example.test"
DELAYS = r"delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+"


@pytest.fixture
def peers():
    made = []

    def make(port=0):
        p = SmtpPeer(port=port)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def expect(inst, pattern, timeout=20.0):
    """wait_log, with the maillog in the failure message."""
    try:
        return inst.wait_log(pattern, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- maillog:\n{inst.logtext()}") from None


def start(mail_instance, main_extra=""):
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE + main_extra)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    return inst


def _connect(inst):
    try:
        return smtplib.SMTP("127.0.0.1", inst.port, timeout=10)
    except OSError:
        return None


def submit(inst, *rcpts, sender=SENDER, subject="mail out"):
    """One message over SMTP to the instance's smtpd; returns the queue ID from the 250 reply."""
    c = wait_for(lambda: _connect(inst), 20, f"smtpd on port {inst.port}")
    with c:
        c.ehlo("client.example")
        c.mail(sender)
        for rcpt in rcpts:
            code, msg = c.rcpt(rcpt)
            assert code == 250, msg
        code, msg = c.data(f"From: <{sender}>\nSubject: {subject}\n\nbody of {subject}\n")
        assert code == 250, msg
    m = re.search(r"queued as ([0-9A-F]+)", msg.decode())
    assert m, msg
    return m.group(1)


def queue_empty(inst):
    return not any(inst.queue_files(q) for q in ("incoming", "active", "deferred", "bounce", "defer"))


def reports(inst):
    """The delivery status notifications in the test user's mbox, parsed."""
    path = inst.mail_spool / TEST_USER
    if not path.exists():
        return []
    out = []
    for m in mailbox.mbox(str(path), create=False):
        msg = email.message_from_bytes(m.as_bytes(), policy=email.policy.compat32)
        if msg.get_content_type() == "multipart/report":
            out.append(msg)
    return out


def subjects(inst):
    path = inst.mail_spool / TEST_USER
    if not path.exists():
        return []
    return [m["Subject"] for m in mailbox.mbox(str(path), create=False)]


def test_transport_maps_routes_end_to_end(mail_instance, peers, tmp_path):
    exact, parent = peers(), peers()
    inst = mail_instance(master_cf=MASTER_CF, main_extra=BASE)
    table = inst.etc / "transport"
    # Exact keys match only their domain; ".domain" keys match every subdomain (Postfix's transport(5)
    # without parent_domain_matches_subdomains); a full address beats its domain.
    table.write_text(f"example.net        smtp:[127.0.0.1]:{exact.port}\n"
                     f".example.net       relay:[127.0.0.1]:{parent.port}\n"
                     "local.example      local:\n"
                     "gone.example       error:5.1.1 this domain is gone\n"
                     "plain.example      error:mail for plain.example is not accepted\n"
                     "blackhole.example  discard:silenced\n"
                     f"{TEST_USER}@blackhole.example  local:\n"
                     "later.example      retry:4.4.1 deliveries paused\n")
    inst.postconf(f"transport_maps = texthash:{table}")
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")

    q_smtp = submit(inst, "bob@example.net", subject="to exact")
    q_relay = submit(inst, "carol@sub.example.net", "dave@deep.sub.example.net", subject="to parent")
    q_local = submit(inst, f"{TEST_USER}@local.example", subject="to local")
    q_error = submit(inst, "nobody@gone.example", "who@plain.example", subject="to error")
    q_discard = submit(inst, "eve@blackhole.example", subject="to discard")
    q_keep = submit(inst, f"{TEST_USER}@blackhole.example", subject="address key")
    q_retry = submit(inst, "frank@later.example", subject="to retry")

    # smtp: the exact key's peer, logged by the smtp service.
    expect(inst, rf"postfix-test/smtp\[\d+\]: {q_smtp}: to=<bob@example\.net>, "
                  rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{exact.port}, {DELAYS}, dsn=2\.0\.0, status=sent \(250 ")
    # relay: both subdomains through the ".example.net" key, one delivery. The log tag is the program's
    # name, as in Postfix (master.cf "relay ... smtp" logs as smtp unless -o syslog_name says otherwise).
    for rcpt in ("carol@sub", "dave@deep.sub"):
        expect(inst, rf"postfix-test/smtp\[\d+\]: {q_relay}: to=<{re.escape(rcpt)}\.example\.net>, "
                      rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{parent.port}, .*status=sent")
    assert [m["rcpts"] for m in exact.messages()] == [["bob@example.net"]]
    assert [sorted(m["rcpts"]) for m in parent.messages()] == [["carol@sub.example.net",
                                                                "dave@deep.sub.example.net"]]
    # local: the local part's mailbox.
    expect(inst, rf"{q_local}: to=<{TEST_USER}@local\.example>, relay=local, .*status=sent")
    # error: returned with the DSN and text of the route, by the error service.
    expect(inst, rf"postfix-test/error\[\d+\]: {q_error}: to=<nobody@gone\.example>, relay=none, {DELAYS}, "
                  r"dsn=5\.1\.1, status=bounced \(this domain is gone\)")
    expect(inst, rf"postfix-test/error\[\d+\]: {q_error}: to=<who@plain\.example>, relay=none, {DELAYS}, "
                  r"dsn=5\.0\.0, status=bounced \(mail for plain\.example is not accepted\)")
    # discard: "sent" with the route's text, relay=none; a full-address key wins over its domain.
    expect(inst, rf"postfix-test/discard\[\d+\]: {q_discard}: to=<eve@blackhole\.example>, relay=none, "
                  rf"{DELAYS}, dsn=2\.0\.0, status=sent \(silenced\)")
    expect(inst, rf"{q_keep}: to=<{TEST_USER}@blackhole\.example>, relay=local, .*status=sent")
    # retry (master.cf "retry ... error"): deferred with the route's reason.
    expect(inst, rf"postfix-test/error\[\d+\]: {q_retry}: to=<frank@later\.example>, relay=none, "
                  r".*dsn=4\.4\.1, status=deferred \(deliveries paused\)")
    wait_for(lambda: q_retry in inst.queue_files("deferred"), 20, "the retry message in deferred/")

    # The bounce reaches the sender's mailbox, one report for both error recipients.
    expect(inst, rf"{q_error}: sender non-delivery notification: [0-9A-F]+")
    wait_for(lambda: reports(inst), 20, "the report in the mailbox")
    [report] = reports(inst)
    assert report["To"] == SENDER
    per_rcpt = report.get_payload()[1].get_payload()[1:]
    got = {r["Final-Recipient"]: (r["Action"], r["Status"], r["Diagnostic-Code"]) for r in per_rcpt}
    assert got == {"rfc822; nobody@gone.example": ("failed", "5.1.1", "X-Postfix; this domain is gone"),
                   "rfc822; who@plain.example": ("failed", "5.0.0",
                                                 "X-Postfix; mail for plain.example is not accepted")}
    wait_for(lambda: {"to local", "address key"} <= set(subjects(inst)), 20, "the local deliveries")
    assert "to discard" not in subjects(inst)
    for qid in (q_smtp, q_relay, q_local, q_error, q_discard, q_keep):
        expect(inst, rf"{qid}: removed")
    assert inst.queue_files("deferred") == [q_retry]


def test_deferred_then_delivered_when_the_peer_comes_back(mail_instance, peers):
    port = free_port()  # nothing listens there yet
    inst = start(mail_instance, f"transport_maps = inline:{{ {{example.net=smtp:[127.0.0.1]:{port}}} }}\n")
    qid = submit(inst, "bob@example.net", subject="comes back")
    refused = f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    expect(inst, rf"{qid}: to=<bob@example\.net>, relay=none, .*status=deferred \({re.escape(refused)}\)")
    wait_for(lambda: qid in inst.queue_files("deferred"), 20, "the message in deferred/")
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert f"({refused})" in r.stdout and "bob@example.net" in r.stdout and r.stdout.startswith("-Queue ID-")

    peer = peers(port)
    # The next retry (backoff 2..4 s, queue_run_delay 2 s) delivers it.
    expect(inst, rf"{qid}: to=<bob@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{port}, {DELAYS}, "
                  r"dsn=2\.0\.0, status=sent \(250 ", 30)
    expect(inst, rf"{qid}: removed")
    assert [m["rcpts"] for m in peer.messages()] == [["bob@example.net"]]
    wait_for(lambda: queue_empty(inst), 10, "an empty queue")
    r = inst.cmd("postqueue", "-p")
    assert r.stdout.strip() == "Mail queue is empty"


def test_relayhost_with_fallback_relay(mail_instance, peers):
    down = free_port()
    peer = peers()
    inst = start(mail_instance, f"relayhost = [127.0.0.1]:{down}\n"
                                f"smtp_fallback_relay = [127.0.0.1]:{peer.port}\n")
    qid = submit(inst, "bob@elsewhere.example", "carol@other.example", subject="via fallback")
    for rcpt in ("bob@elsewhere", "carol@other"):
        expect(inst, rf"postfix-test/smtp\[\d+\]: {qid}: to=<{rcpt}\.example>, "
                      rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{peer.port}, {DELAYS}, dsn=2\.0\.0, status=sent")
    expect(inst, rf"{qid}: removed")
    # One nexthop (the relayhost) for both domains: one delivery to the fallback relay.
    assert [sorted(m["rcpts"]) for m in peer.messages()] == [["bob@elsewhere.example", "carol@other.example"]]
    wait_for(lambda: queue_empty(inst), 10, "an empty queue")


def test_relayhost_primary_used_when_up(mail_instance, peers):
    primary, fallback = peers(), peers()
    inst = start(mail_instance, f"relayhost = [127.0.0.1]:{primary.port}\n"
                                f"smtp_fallback_relay = [127.0.0.1]:{fallback.port}\n")
    qid = submit(inst, "bob@elsewhere.example", subject="via primary")
    expect(inst, rf"{qid}: to=<bob@elsewhere\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{primary.port}, "
                  r".*status=sent")
    assert len(primary.messages()) == 1 and fallback.messages() == []
