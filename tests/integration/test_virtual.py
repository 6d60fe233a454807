"""test_virtual.py: virtual_alias_maps, virtual alias domains and canonical_maps, end to end over SMTP."""
import re
import smtplib
import uuid

from conftest import run
from mailinstance import TEST_USER, wait_for

LOCAL = f"{TEST_USER}@localhost"
SENDER = f"{TEST_USER}@mx.example.test"


def table(inst, name, text):
    """Write etc/NAME and build its hash: database with postmap; returns "hash:PATH"."""
    path = inst.etc / name
    path.write_text(text)
    run("postmap", f"hash:{path}", check=True)
    return f"hash:{path}"


def start(mail_instance, virtual="", canonical="", extra=""):
    """An instance whose tables are written before main.cf names them (main.cf is written first)."""
    inst = mail_instance()
    settings = []
    if virtual:
        settings.append(f"virtual_alias_maps = {table(inst, 'virtual', virtual)}")
    if canonical:
        settings.append(f"canonical_maps = {table(inst, 'canonical', canonical)}")
    with open(inst.main_cf, "a") as f:
        f.write("".join(s + "\n" for s in settings) + extra)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    return inst


def send(inst, rcpts, sender=SENDER):
    """Submit one message over SMTP; returns (token, queue id)."""
    token = uuid.uuid4().hex
    msg = f"From: <{sender}>\r\nSubject: virtual {token}\r\n\r\nbody of {token}\r\n"
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(msg)
    assert code == 250, (code, text)
    m = re.search(rb"queued as ([0-9A-F]+)", text)
    assert m, text
    return token, m.group(1).decode()


def send_refused(inst, rcpt, sender=SENDER):
    """Submit a message that cleanup refuses; returns the SMTP error (code, text) at end of DATA."""
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data("Subject: refused\r\n\r\nbody\r\n")
    return code, text.decode()


def mbox_has(inst, token):
    return token.encode() in inst.mbox(TEST_USER)


def test_alias_to_local_user(mail_instance):
    inst = start(mail_instance, virtual=f"info@virtual.test {LOCAL}\n")
    token, qid = send(inst, ["info@virtual.test"])
    inst.wait_log(rf"{qid}: to=<{LOCAL}>, orig_to=<info@virtual\.test>, relay=local, .*status=sent")
    inst.wait_log(rf"{qid}: removed")
    assert mbox_has(inst, token)
    assert f"Delivered-To: {LOCAL}\n".encode() in inst.mbox(TEST_USER)


def test_one_to_many_with_self_reference_and_duplicates(mail_instance):
    # The classic "keep a copy" form: the address maps to itself and to another alias, and the
    # two paths to postd-test@localhost collapse into one recipient.
    inst = start(mail_instance, virtual=(f"{SENDER} {SENDER}, copy@virtual.test, {LOCAL}\n"
                                         f"copy@virtual.test {LOCAL}, {LOCAL}\n"))
    token, qid = send(inst, [SENDER])
    inst.wait_log(rf"{qid}: from=<{re.escape(SENDER)}>, size=\d+, nrcpt=2 \(queue active\)")
    inst.wait_log(rf"{qid}: to=<{re.escape(SENDER)}>, relay=local, .*status=sent")
    inst.wait_log(rf"{qid}: to=<{LOCAL}>, orig_to=<{re.escape(SENDER)}>, relay=local, .*status=sent")
    inst.wait_log(rf"{qid}: removed")
    assert mbox_has(inst, token)


def test_catch_all_domain(mail_instance):
    inst = start(mail_instance, virtual=f"@catch.test {LOCAL}\n")
    token, qid = send(inst, ["anyone@catch.test", "Someone.Else@CATCH.test"])
    inst.wait_log(rf"{qid}: from=<{re.escape(SENDER)}>, size=\d+, nrcpt=2 \(queue active\)")
    inst.wait_log(rf"{qid}: to=<{LOCAL}>, orig_to=<anyone@catch\.test>, relay=local, .*status=sent")
    inst.wait_log(rf"{qid}: removed")
    assert mbox_has(inst, token)


def test_alias_loop_hits_the_recursion_limit(mail_instance):
    inst = start(mail_instance, virtual="a@loop.test b@loop.test\nb@loop.test a@loop.test\n",
                 extra="virtual_alias_recursion_limit = 20\n")
    code, text = send_refused(inst, "a@loop.test")
    assert code == 451 and text.startswith("4.6.0 "), (code, text)
    assert "virtual_alias_recursion_limit" in text
    inst.wait_log(r"warning: [0-9A-F]+: virtual_alias_maps expansion of a@loop\.test stopped at "
                  r"[ab]@loop\.test: virtual_alias_recursion_limit exceeded -- message deferred")
    assert not inst.queue_files("incoming") and not inst.queue_files("active")


def test_canonical_maps_rewrite_the_envelope_sender(mail_instance):
    inst = start(mail_instance, canonical="@old.test @new.test\nboss@corp.test chief@corp.test\n")
    token, qid = send(inst, [LOCAL], sender="alice@old.test")
    inst.wait_log(rf"{qid}: from=<alice@new\.test>, size=\d+, nrcpt=1 \(queue active\)")
    inst.wait_log(rf"{qid}: removed")
    box = inst.mbox(TEST_USER).decode()
    assert token in box
    assert "Return-Path: <alice@new.test>\n" in box
    token, qid = send(inst, [LOCAL], sender="boss@corp.test")
    inst.wait_log(rf"{qid}: removed")
    assert "Return-Path: <chief@corp.test>\n" in inst.mbox(TEST_USER).decode()


def test_missing_table_defers_with_451_naming_it(mail_instance):
    inst = mail_instance()
    missing = inst.etc / "missing-virtual"
    with open(inst.main_cf, "a") as f:
        f.write(f"virtual_alias_maps = hash:{missing}\n")
    inst.start()  # only the table types are checked at start: a missing database defers mail
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(SENDER)
        # smtpd asks the table whether the recipient is a virtual alias: a 4xx, never a guess.
        code, text = s.rcpt(LOCAL)
    assert code == 451 and text.startswith(b"4.3.0 "), (code, text)
    inst.wait_log(rf"warning: hash:{re.escape(str(missing))} is unavailable: open database "
                  rf"{re.escape(str(missing))}\.db: No such file or directory")

    # Once the table exists, the same mail goes through without a restart.
    missing.write_text(f"info@virtual.test {LOCAL}\n")
    run("postmap", f"hash:{missing}", check=True)
    token, qid = send(inst, ["info@virtual.test"])
    inst.wait_log(rf"{qid}: to=<{LOCAL}>, orig_to=<info@virtual\.test>, relay=local, .*status=sent")


def test_unknown_user_in_virtual_alias_domain(mail_instance):
    # virtual(5)'s form: the domain itself as a key makes it a virtual alias domain under the
    # default virtual_alias_domains = $virtual_alias_maps.
    inst = start(mail_instance, virtual=f"virtual.test anything\ninfo@virtual.test {LOCAL}\n")
    # Over SMTP the unknown user is refused at RCPT TO, as Postfix's smtpd does.
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(SENDER)
        assert s.rcpt("nobody@virtual.test") == (
            550, b"5.1.1 <nobody@virtual.test>: Recipient address rejected: User unknown in virtual alias table")
    # Submitted locally it gets past smtpd: the resolver bounces it with the same words.
    msg = "Subject: to nobody\n\nbody\n"
    r = run("sendmail", "-C", inst.etc, "-f", LOCAL, "nobody@virtual.test", input=msg, env=inst.env)
    assert r.returncode == 0, r.stderr
    inst.wait_log(r"to=<nobody@virtual\.test>, relay=none, .*dsn=5\.1\.1, status=bounced "
                  r"\(<nobody@virtual\.test>: User unknown in virtual alias table\)")
    inst.wait_log(r"sender non-delivery notification: [0-9A-F]+")
    box = wait_for(lambda: "User unknown in virtual alias table" in inst.mbox(TEST_USER).decode()
                   and inst.mbox(TEST_USER).decode(), 20, "the bounce in the sender's mailbox")
    assert "nobody@virtual.test" in box


def test_postfix_check_warns_about_a_domain_in_both_lists(mail_instance):
    inst = mail_instance(main_extra="virtual_alias_domains = virtual.test, localhost\n")
    r = inst.cmd("postfix", "check")
    assert "do not list domain localhost in BOTH mydestination and virtual_alias_domains" in r.stderr, r.stderr
    assert "virtual.test in BOTH" not in r.stderr
