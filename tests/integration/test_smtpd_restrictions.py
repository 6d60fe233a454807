"""test_smtpd_restrictions.py: smtpd_client/helo/sender/data_restrictions in a real instance, with
GDBM access tables built by postmap, driven by smtplib from inside and outside mynetworks."""
import smtplib

from conftest import run
from mailinstance import TEST_USER
from test_smtpd import BASE, wait_port

OUTSIDE = ("127.0.0.9", 0)  # not in mynetworks (127.0.0.1/32)


def started(mail_instance, main_extra=""):
    """A whole instance (accepted recipients need cleanup), mynetworks = 127.0.0.1/32."""
    inst = mail_instance(main_extra=BASE + main_extra)
    inst.start()
    wait_port(inst.port)
    return inst


def hash_table(inst, name, text):
    path = inst.etc / name
    path.write_text(text)
    run("postmap", f"hash:{path}", check=True)
    return f"hash:{path}"


def test_sender_access_table_rejects_at_rcpt(mail_instance):
    inst = mail_instance(main_extra=BASE)
    table = hash_table(inst, "sender_access", "spammer@example.net REJECT no thanks\n"
                                              "junk.example 450 4.7.2 try later\n"
                                              "<> OK\n")
    inst.postconf(f"smtpd_sender_restrictions = check_sender_access {table}")
    inst.start()
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10, source_address=OUTSIDE) as c:
        c.ehlo("client.example")
        # smtpd_delay_reject = yes: MAIL FROM is accepted, the verdict comes at RCPT TO.
        assert c.docmd("MAIL FROM:<spammer@example.net>")[0] == 250
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>") == (
            554, b"5.7.1 <spammer@example.net>: Sender address rejected: no thanks")
        c.rset()
        c.docmd("MAIL FROM:<who@mail.junk.example>")
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>") == (
            450, b"4.7.2 <who@mail.junk.example>: Sender address rejected: try later")
        c.rset()
        c.docmd("MAIL FROM:<>")
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>")[0] == 250
    inst.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.9\]: 554 5\.7\.1 <spammer@example\.net>: "
                  r"Sender address rejected: no thanks; from=<spammer@example\.net> "
                  rf"to=<{TEST_USER}@localhost> proto=ESMTP helo=<client\.example>")


def test_helo_restrictions_and_helo_required(mail_instance):
    inst = started(mail_instance, "smtpd_helo_required = yes\n"
                                  "smtpd_helo_restrictions = permit_mynetworks, reject_invalid_helo_hostname, "
                                  "reject_non_fqdn_helo_hostname\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10, source_address=OUTSIDE) as c:
        assert c.docmd("MAIL FROM:<a@example.org>") == (503, b"5.5.1 Error: send HELO/EHLO first")
        c.ehlo("bad..name")
        c.docmd("MAIL FROM:<a@example.org>")
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>") == (
            501, b"5.5.2 <bad..name>: Helo command rejected: Invalid name")
        c.rset()
        c.ehlo("shortname")
        c.docmd("MAIL FROM:<a@example.org>")
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>") == (
            504, b"5.5.2 <shortname>: Helo command rejected: need fully-qualified hostname")
    # permit_mynetworks ends the HELO list for a trusted client.
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("shortname")
        c.docmd("MAIL FROM:<a@example.org>")
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>")[0] == 250


def test_client_rejected_at_connect_without_delay_reject(mail_instance):
    inst = mail_instance(main_extra=BASE + "smtpd_delay_reject = no\n")
    table = hash_table(inst, "client_access", "127.0.0.9 REJECT\n")
    inst.postconf(f"smtpd_client_restrictions = check_client_access {table}",
                  "smtpd_sender_restrictions = reject_non_fqdn_sender")
    inst.start()
    wait_port(inst.port)
    c = smtplib.SMTP(timeout=10, source_address=OUTSIDE)
    try:
        code, msg = c.connect("127.0.0.1", inst.port)
        # The rejection replaces the greeting; everything but QUIT then gets 503.
        assert (code, msg) == (554, b"5.7.1 <unknown[127.0.0.9]>: Client host rejected: Access denied")
        assert c.docmd("EHLO client.example")[0] == 503
        assert c.docmd("MAIL FROM:<a@example.org>") == (503, b"5.7.0 Error: access denied for unknown[127.0.0.9]")
        assert c.docmd("QUIT")[0] == 221
    finally:
        c.close()
    inst.wait_log(r"NOQUEUE: reject: CONNECT from unknown\[127\.0\.0\.9\]: 554 5\.7\.1 <unknown\[127\.0\.0\.9\]>: "
                  r"Client host rejected: Access denied; proto=SMTP")
    # Other clients are greeted; their sender is judged at MAIL FROM.
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.docmd("MAIL FROM:<a@shorthost>") == (
            504, b"5.5.2 <a@shorthost>: Sender address rejected: need fully-qualified address")
        assert c.docmd("MAIL FROM:<a@example.org>")[0] == 250


def test_unsupported_restriction_defers_and_is_announced(mail_instance):
    inst = started(mail_instance, "smtpd_sender_restrictions = reject_unverified_sender\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("client.example")
        c.docmd("MAIL FROM:<a@example.org>")
        # Never a silent pass: a restriction postd cannot evaluate keeps mail out with a 4xx.
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>") == (451, b"4.3.5 Server configuration error")
    inst.wait_log(r'smtpd_sender_restrictions: restriction "reject_unverified_sender" is not supported by '
                  r"postd; mail that reaches it is deferred with 451 4\.3\.5")
