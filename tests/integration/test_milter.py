"""test_milter.py: smtpd_milters and non_smtpd_milters with a milter written against the wire protocol
(milter_peer.py) on loopback: macros and envelope the filter sees, reject/tempfail/discard/quarantine,
header, recipient, sender and body changes applied to the queued message, milter_default_action when the
filter is down, receive_override_options=no_milters, and sendmail mail through non_smtpd_milters."""
import os
import re
import smtplib
import ssl
import subprocess
import struct
import time
import uuid

import pytest

from conftest import run
import mailinstance
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, free_port, wait_for
from milter_peer import MilterPeer, cstr, packet

RCPT = f"{TEST_USER}@localhost"
SENDER = "sender@client.example"
STARTED = []

no_daemon_crash = mailinstance.no_crash_guard(STARTED)


@pytest.fixture
def peer():
    made = []

    def make(**kw):
        p = MilterPeer(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def make(mail_instance, extra="", master_cf=None):
    inst = mail_instance(main_extra="mynetworks = 127.0.0.0/8\n" + extra, master_cf=master_cf)
    STARTED.append(inst)
    inst.start()
    return inst


def message(token, extra_headers=()):
    hdrs = [f"From: <{SENDER}>", f"To: <{RCPT}>", f"Subject: milter {token}", *extra_headers]
    return ("\r\n".join(hdrs) + f"\r\n\r\nbody line {token}\r\nsecond line\r\n").encode()


def send(inst, token, rcpts=(RCPT,), extra_headers=(), port=None):
    with smtplib.SMTP("127.0.0.1", port or inst.port, timeout=60) as s:
        s.ehlo("client.example")
        return s.sendmail(SENDER, list(rcpts), message(token, extra_headers))


def delivered(inst, marker, user=TEST_USER, timeout=30):
    def find():
        for m in re.split(r"(?m)^From ", inst.mbox(user).decode(errors="replace")):
            if marker in m:
                return m
        return None
    return wait_for(find, timeout, f"a delivered message with {marker!r}")


def wait_log(inst, pattern):
    """inst.wait_log, with the maillog's end in the failure."""
    try:
        return inst.wait_log(pattern)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- maillog:\n{inst.logtext()[-4000:]}") from None


def head_of(msg):
    return msg.split("\n\n", 1)[0]


def test_milter_sees_envelope_headers_body_and_macros(mail_instance, peer):
    p = peer(eom=[packet(b"h", cstr("X-Milter", "seen"))])
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    token = uuid.uuid4().hex
    send(inst, token)
    msg = delivered(inst, token)
    assert "X-Milter: seen" in head_of(msg)
    cmds = p.commands()
    # protocol order: negotiation, connect, helo, mail, rcpt, data, headers, eoh, body, eom
    order = [c for c in cmds if c != b"D"]
    assert order[:6] == [b"O", b"C", b"H", b"M", b"R", b"T"], order
    assert order.index(b"N") < order.index(b"B") < order.index(b"E")
    assert p.envelope(b"M") == [f"<{SENDER}>"]
    assert p.envelope(b"R") == [f"<{RCPT}>"]
    assert p.envelope(b"H") == ["client.example"]
    m = p.macros()
    qid = re.search(r"cleanup\[\d+\]: (\w+): message-id=", inst.logtext()).group(1)
    assert m["i"] == qid
    assert m["{mail_addr}"] == SENDER and m["{rcpt_addr}"] == RCPT
    assert m["_"].endswith("[127.0.0.1]") and m["j"]
    assert m["{daemon_addr}"] == "127.0.0.1" and m["{daemon_name}"] == m["j"]
    hdrs = dict(p.headers())
    assert hdrs["Subject"] == f"milter {token}"
    assert "Received" in hdrs  # what is queued is what the filter sees
    assert f"body line {token}\r\nsecond line\r\n".encode() in p.body()


def test_milter_reject_at_end_of_message(mail_instance, peer):
    p = peer(final=packet(b"y", cstr("554 5.7.1 Spam detected by the test")))
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(inst, uuid.uuid4().hex)
    # the milter's own code, as Postfix passes it on
    assert e.value.smtp_code == 554 and e.value.smtp_error == b"5.7.1 Spam detected by the test", e.value
    wait_log(inst, r"milter-reject: END-OF-MESSAGE from \S+\[127\.0\.0\.1\]: 5\.7\.1 Spam detected by the "
                  r"test; from=<sender@client\.example> to=<")
    assert inst.queue_files("incoming") == [] and inst.queue_files("active") == []


def test_milter_tempfail_at_rcpt(mail_instance, peer):
    p = peer(reject_at=b"R", stage_reply=packet(b"t"))
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        send(inst, uuid.uuid4().hex)
    code, text = e.value.recipients[RCPT]
    assert code == 451 and text.startswith(b"4.7.1"), e.value
    wait_log(inst, r"milter-reject: RCPT from \S+\[127\.0\.0\.1\]: 4\.7\.1 Service unavailable - try again "
                   r"later; from=<sender@client\.example> to=<%s>" % re.escape(RCPT))


def test_milter_multiline_reply_is_cut_to_one_line(mail_instance, peer):
    p = peer(final=packet(b"y", cstr("550-5.7.1 first line\r\n550 5.7.1 second\r\nRSET")))
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail(SENDER, [RCPT], message(uuid.uuid4().hex))
        assert e.value.smtp_code == 550 and e.value.smtp_error == b"5.7.1 first line", e.value
        # nothing else came in that reply: the next answer is the next command's
        assert s.noop()[0] == 250


def test_milter_rejects_one_recipient_at_rcpt_time(mail_instance, peer):
    bad = "bad@discard.test"  # would be accepted (and dropped) but for the milter
    p = peer(reject_rcpt=bad, stage_reply=packet(b"y", cstr("553 5.7.1 No mail for bad")))
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\ntransport_maps = inline:{{discard.test=discard:}}\n")
    token = uuid.uuid4().hex
    refused = send(inst, token, rcpts=(RCPT, bad))
    assert refused == {bad: (553, b"5.7.1 No mail for bad")}, refused
    delivered(inst, token)
    wait_log(inst, r"milter-reject: RCPT from \S+\[127\.0\.0\.1\]: 5\.7\.1 No mail for bad; "
                   r"from=<sender@client\.example> to=<bad@discard\.test>")
    # the conversation went on after the refused RCPT: one connection, both RCPTs, then the message
    assert p.envelope(b"R") == [f"<{RCPT}>", f"<{bad}>"] and b"E" in p.commands()
    assert p.commands().count(b"O") == 1


def test_milter_discard(mail_instance, peer):
    p = peer(final=packet(b"d"))
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    token = uuid.uuid4().hex
    send(inst, token)  # 250: accepted, then dropped
    wait_log(inst, r"milter-discard: END-OF-MESSAGE from \S+\[127\.0\.0\.1\]: milter triggers DISCARD")
    p2 = uuid.uuid4().hex
    assert inst.queue_files("incoming") == [] and token not in inst.mbox(TEST_USER).decode(errors="replace")
    del p2


def test_milter_down_default_tempfail_then_accept(mail_instance):
    port = free_port()  # nothing listens there
    inst = make(mail_instance, f"smtpd_milters = inet:127.0.0.1:{port}\n")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        send(inst, uuid.uuid4().hex)
    code, text = e.value.recipients[RCPT]
    assert code == 451 and text.startswith(b"4.7.1"), e.value
    wait_log(inst, r"warning: connect to Milter service inet:127\.0\.0\.1:%d: Connection refused" % port)
    inst.postconf("milter_default_action = accept")
    r = inst.postfix("reload")
    assert r.returncode == 0, r.stderr
    token = uuid.uuid4().hex

    def accepted():
        try:
            send(inst, token)
            return True
        except (smtplib.SMTPException, OSError):  # SMTPRecipientsRefused too
            return False  # daemons started before the reload may still answer, or be on their way out
    wait_for(accepted, 30, "mail accepted with milter_default_action = accept")
    delivered(inst, token)


@pytest.mark.parametrize("garbage", [packet(b"Z"), b"\xff\xff\xff\xffE", packet(b"y", cstr("299 not a code")),
                                     packet(b"h", cstr("X-Only-Name"))],
                         ids=["unknown-reply", "huge-length", "bad-replycode", "short-header"])
def test_milter_per_milter_default_action_and_garbage(mail_instance, peer, garbage):
    # A filter that answers garbage at end of message is as good as down: its own default_action applies.
    p = peer(final=garbage)
    inst = make(mail_instance, f"smtpd_milters = {{ {p.endpoint()}, default_action=accept }}\n")
    token = uuid.uuid4().hex
    send(inst, token)
    delivered(inst, token)
    wait_log(inst, r"warning: milter inet:127\.0\.0\.1:\d+: END-OF-MESSAGE")


def test_milter_quarantine_holds(mail_instance, peer):
    p = peer(eom=[packet(b"q", cstr("looks suspicious"))])
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    token = uuid.uuid4().hex
    send(inst, token)
    qid = wait_log(inst, r"(\w+): milter-hold: END-OF-MESSAGE from \S+\[127\.0\.0\.1\]: milter triggers "
                        r"HOLD action: looks suspicious").group(1)
    wait_for(lambda: qid in inst.queue_files("hold"), 20, "the message in hold/")
    r = inst.cmd("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    assert re.search(r"(?m)^%s!" % qid, r.stdout), r.stdout


def test_milter_header_changes(mail_instance, peer):
    p = peer(eom=[
        packet(b"m", struct.pack(">I", 1) + cstr("Subject", "changed subject")),
        packet(b"m", struct.pack(">I", 1) + cstr("X-Remove-Me", "")),
        packet(b"i", struct.pack(">I", 0) + cstr("X-First", "on top")),
        packet(b"h", cstr("X-Folded", "one\r\n\ttwo")),
    ])
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    token = uuid.uuid4().hex
    send(inst, token, extra_headers=["X-Remove-Me: yes", "X-Keep: yes"])
    msg = delivered(inst, token)
    head = head_of(msg)
    assert "Subject: changed subject" in head and f"Subject: milter {token}" not in head
    assert "X-Remove-Me" not in head and "X-Keep: yes" in head
    assert "X-Folded: one\n\ttwo" in head
    # inserted at index 0: above everything cleanup queued (local adds Return-Path and Delivered-To)
    assert re.search(r"Delivered-To: [^\n]*\nX-First: on top\nReceived: ", head), head
    # the queue ID did not change with the rewrite
    qid = re.search(r"cleanup\[\d+\]: (\w+): message-id=", inst.logtext()).group(1)
    assert f"id {qid}" in head


def test_milter_replace_body(mail_instance, peer):
    new_body = b"replaced body\r\n" + b"x" * 70000 + b"\r\nlast line\r\n"
    chunks = [new_body[i:i + 60000] for i in range(0, len(new_body), 60000)]
    p = peer(eom=[packet(b"b", c) for c in chunks])
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n")
    token = uuid.uuid4().hex
    send(inst, token)
    msg = delivered(inst, token)  # the token is in the Subject: the body is gone
    body = msg.split("\n\n", 1)[1]
    assert body.startswith("replaced body\n" + "x" * 70000 + "\nlast line\n"), body[:200]
    assert f"body line {token}" not in msg and "\r" not in body


def test_milter_recipients_and_sender(mail_instance, peer):
    gone, added = "gone@discard.test", "added@discard.test"
    p = peer(eom=[packet(b"+", cstr(f"<{added}>")), packet(b"-", cstr(f"<{gone}>")),
                  packet(b"e", cstr("<changed@client.example>"))])
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\n"
                               "transport_maps = inline:{discard.test=discard:}\n")
    token = uuid.uuid4().hex
    send(inst, token, rcpts=(RCPT, gone))
    msg = delivered(inst, token)
    assert "Return-Path: <changed@client.example>" in msg
    wait_log(inst, r"to=<%s>.*status=sent" % re.escape(added))
    wait_log(inst, r"from=<changed@client\.example>")
    assert f"to=<{gone}>" not in inst.logtext()


def test_no_milters_override_and_non_smtpd_milters(mail_instance, peer):
    p = peer(eom=[packet(b"h", cstr("X-Milter", "non-smtpd"))])
    q = peer(final=packet(b"r"))
    inst = make(mail_instance, f"non_smtpd_milters = {p.endpoint()}\nsmtpd_milters = {q.endpoint()}\n"
                               "receive_override_options = no_milters\n")
    token = uuid.uuid4().hex
    send(inst, token)  # no_milters: the rejecting smtpd milter is never asked
    delivered(inst, token)
    assert q.commands() == []
    inst.postconf("receive_override_options =")
    r = inst.postfix("reload")
    assert r.returncode == 0, r.stderr
    token2 = uuid.uuid4().hex
    r = run("sendmail", "-C", inst.etc, "-f", SENDER, TEST_USER, input=message(token2).decode(), env=inst.env)
    assert r.returncode == 0, r.stderr
    msg = delivered(inst, token2)
    assert "X-Milter: non-smtpd" in head_of(msg)
    assert p.macros()["_"] == "localhost [127.0.0.1]"
    assert p.envelope(b"M") == [f"<{SENDER}>"] and b"H" not in p.commands()  # no HELO for local mail


def test_milter_command_timeout_and_protocol_version(mail_instance, peer):
    p = peer(hang_at=b"M")  # never answers MAIL FROM
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\nmilter_command_timeout = 2s\n"
                               "milter_protocol = 2\n")
    t0 = time.monotonic()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:  # MAIL goes to the milters with the first RCPT
        send(inst, uuid.uuid4().hex)
    code, text = e.value.recipients[RCPT]
    assert code == 451 and text.startswith(b"4.7.1"), e.value
    assert time.monotonic() - t0 < 30
    wait_log(inst, r"warning: milter inet:127\.0\.0\.1:\d+: MAIL: Connection timed out")
    version, actions, protocol = p.offered_version()[0]
    assert version == 2 and actions <= 0x3F and protocol <= 0x7F
    assert b"T" not in p.commands()  # DATA came with version 4: never sent to a version 2 filter


def test_listener_override_of_smtpd_milters(mail_instance, peer):
    # main.cf has no milter; one listener names one with -o (an inet: filter that only master.cf names: cleanup
    # must still get its TCP-capable allow-list), another turns the main.cf one off.
    p = peer(eom=[packet(b"h", cstr("X-Milter", "per-listener"))])
    other = free_port()
    master_cf = DEFAULT_MASTER_CF + (f"127.0.0.1:{other} inet n - n - - smtpd\n"
                                     f"  -o smtpd_milters={p.endpoint()}\n")
    inst = make(mail_instance, master_cf=master_cf)
    token, token2 = uuid.uuid4().hex, uuid.uuid4().hex
    send(inst, token)  # the main listener: no milter
    send(inst, token2, port=other)
    assert "X-Milter" not in head_of(delivered(inst, token))
    assert "X-Milter: per-listener" in head_of(delivered(inst, token2))
    assert len(p.envelope(b"M")) == 1


def test_milter_down_default_quarantine_and_reject(mail_instance):
    port = free_port()  # nothing listens there
    inst = make(mail_instance, f"smtpd_milters = inet:127.0.0.1:{port}\nmilter_default_action = quarantine\n")
    token = uuid.uuid4().hex
    send(inst, token)  # accepted, into hold/
    qid = wait_log(inst, r"(\w+): milter-hold: \S+ from \S+\[127\.0\.0\.1\]: milter triggers HOLD action").group(1)
    wait_for(lambda: qid in inst.queue_files("hold"), 20, "the message in hold/")
    inst.postconf("milter_default_action = reject")
    r = inst.postfix("reload")
    assert r.returncode == 0, r.stderr

    def refused():
        try:
            send(inst, uuid.uuid4().hex)
        except smtplib.SMTPRecipientsRefused as e:
            return e.recipients[RCPT]
        except (smtplib.SMTPException, OSError):
            return None
        return None
    code, text = wait_for(refused, 30, "RCPT refused with milter_default_action = reject")
    assert code == 550 and text.startswith(b"5.7.1"), text


def test_two_milters_in_a_row(mail_instance, peer):
    # Both see the message; both add a header; the second's replacement body wins over the first's.
    p1 = peer(eom=[packet(b"h", cstr("X-First", "1")), packet(b"b", b"first body\r\n")])
    p2 = peer(eom=[packet(b"h", cstr("X-Second", "2")), packet(b"b", b"second body\r\n")])
    inst = make(mail_instance, f"smtpd_milters = {p1.endpoint()}, {{ {p2.endpoint()}, command_timeout=10s }}\n")
    token = uuid.uuid4().hex
    send(inst, token)
    msg = delivered(inst, token)
    head, body = msg.split("\n\n", 1)
    assert "X-First: 1" in head and "X-Second: 2" in head
    assert body.startswith("second body\n") and "first body" not in body, body
    assert b"E" in p1.commands() and b"E" in p2.commands()


def test_20mib_message_through_a_milter_that_edits_it(mail_instance, peer, capsys):
    """The body streams to the milter and, for the rewrite an edit needs, from the old content to the new:
    cleanup never holds the message."""
    p = peer(eom=[packet(b"h", cstr("X-Milter", "big")), packet(b"m", struct.pack(">I", 1) + cstr("Subject", "edited"))])
    inst = make(mail_instance, f"smtpd_milters = {p.endpoint()}\nmessage_size_limit = 40000000\n")
    line = "z" * 76 + "\r\n"
    body = line * (20 * 1024 * 1024 // len(line)) + "the very last line\r\n"
    msg = f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: big one\r\n\r\n{body}".encode()
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=120) as s:
        s.sendmail(SENDER, [RCPT], msg)
    took = time.monotonic() - t0
    qid = wait_log(inst, r"cleanup\[\d+\]: (\w+): message-id=").group(1)
    inst.wait_log(r"%s: to=<postd-test@localhost>, .*status=sent" % qid, timeout=120)
    peak = max(int(re.search(r"VmHWM:\s+(\d+) kB", open(f"/proc/{pid}/status").read()).group(1))
               for pid in inst.daemon_pids("cleanup"))
    with capsys.disabled():
        print(f"\n[figure] 20 MiB message through a milter that edits headers: cleanup peak RSS {peak} KiB, "
              f"client's DATA..250 {took:.2f} s")
    assert peak < 16 * 1024, peak
    box = inst.mbox(TEST_USER)
    assert b"X-Milter: big\n" in box and b"Subject: edited\n" in box and b"Subject: big one" not in box
    assert box.rstrip(b"\n").endswith(b"the very last line")
    assert len(p.body()) == len(body)  # every body byte reached the milter, CRLF as sent


def test_milter_sees_tls_macros(mail_instance, peer):
    p = peer()
    inst = mail_instance(main_extra=f"mynetworks = 127.0.0.0/8\nsmtpd_milters = {p.endpoint()}\n"
                                    "smtpd_tls_security_level = may\n")
    STARTED.append(inst)
    d = inst.root / "tls"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.example.test",
                    "-days", "2", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    os.chmod(d / "key.pem", 0o600)
    inst.postconf(f"smtpd_tls_cert_file = {d}/cert.pem", f"smtpd_tls_key_file = {d}/key.pem")
    inst.start()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    token = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
        s.ehlo("client.example")
        s.starttls(context=ctx)
        s.ehlo("client.example")
        s.sendmail(SENDER, [RCPT], message(token))
    delivered(inst, token)
    m = p.macros()
    assert m["{tls_version}"].startswith("TLSv1."), m
    assert m["{cipher}"] and " " not in m["{cipher}"], m
    assert int(m["{cipher_bits}"]) >= 128, m
