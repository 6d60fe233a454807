"""test_content_filter.py: after-queue content filtering as Postfix's FILTER_README and seed 000 set it up:
content_filter = smtp:[127.0.0.1]:PORT sends every message to a real SMTP filter (aiosmtpd, adding a
header), which re-injects it on a listener with -o content_filter= (same instance) or into a second
instance; the mail arrives filtered exactly once and never loops."""
import re
import smtplib
import uuid

import pytest

from conftest import require, run
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, free_port, wait_for

try:
    from aiosmtpd.controller import Controller
except ImportError:  # the README's test command installs python3-aiosmtpd
    Controller = None


class AddHeader:
    """The filter: prepends X-Filtered and hands the message to the re-injection port."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.seen = 0

    async def handle_DATA(self, server, session, envelope):
        self.seen += 1
        data = b"X-Filtered: by the test filter\r\n" + envelope.original_content
        try:
            with smtplib.SMTP("127.0.0.1", self.target_port, timeout=30) as s:
                s.sendmail(envelope.mail_from, envelope.rcpt_tos, data)
        except (OSError, smtplib.SMTPException) as e:
            return f"451 4.3.0 re-injection failed: {e}"
        return "250 2.0.0 Ok: filtered"


@pytest.fixture
def content_filter():
    require(Controller, "python3-aiosmtpd (apt-get install python3-aiosmtpd)")
    started = []

    def make(target_port):
        handler = AddHeader(target_port)
        c = Controller(handler, hostname="127.0.0.1", port=free_port())
        c.start()
        started.append(c)
        return handler, c.port

    yield make
    for c in started:
        c.stop()


def message(token):
    return f"From: <alice@example.org>\r\nSubject: filter {token}\r\n\r\nbody {token}\r\n"


def test_filter_and_reinjection_listener_in_one_instance(mail_instance, content_filter):
    reinject = free_port()
    handler, fport = content_filter(reinject)
    master_cf = DEFAULT_MASTER_CF + (
        "smtp      unix  -       -       n       -       -       smtp\n"
        f"127.0.0.1:{reinject} inet n - n - - smtpd\n"
        "  -o content_filter=\n"
        "  -o smtpd_client_restrictions=permit_mynetworks,reject\n")
    inst = mail_instance(master_cf=master_cf,
                         main_extra=f"content_filter = smtp:[127.0.0.1]:{fport}\nmynetworks = 127.0.0.0/8\n")
    inst.start()
    token = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.sendmail("alice@example.org", [f"{TEST_USER}@mx.example.test"], message(token))
    # Submitted locally too: pickup applies content_filter as smtpd does.
    token2 = uuid.uuid4().hex
    r = run("sendmail", "-C", inst.etc, "-f", "alice@example.org", TEST_USER, input=message(token2), env=inst.env)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: all(f"filter {t}".encode() in inst.mbox(TEST_USER) for t in (token, token2)), 60,
             "both messages through the filter")
    box = inst.mbox(TEST_USER).decode()
    for t in (token, token2):
        assert box.count(f"Subject: filter {t}") == 1, box
    assert box.count("X-Filtered: by the test filter") == 2, box
    assert handler.seen == 2
    # The copies are in the mailbox before local and smtp log them: wait for the lines, then count.
    to_filter = rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{fport}, .*status=sent"
    to_mailbox = r"relay=local, .*status=sent"
    wait_for(lambda: len(re.findall(to_filter, inst.logtext())) >= 2 and
             len(re.findall(to_mailbox, inst.logtext())) >= 2, 30, "the delivery log lines")
    log = inst.logtext()
    assert len(re.findall(to_filter, log)) == 2, log
    assert len(re.findall(to_mailbox, log)) == 2, log


def test_seed000_chain_through_two_instances(mail_instance, content_filter):
    """Instance A (public side) filters everything; the filter hands it to instance B on lo, which
    delivers; B has no filter, so nothing comes back round."""
    b = mail_instance(name="postfix-b")
    b.start()
    handler, fport = content_filter(b.port)
    a = mail_instance(name="postfix-a",
                      master_cf=DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n",
                      main_extra=f"content_filter = smtp:[127.0.0.1]:{fport}\nmynetworks = 127.0.0.0/8\n")
    a.start()
    token = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", a.port, timeout=30) as s:
        s.sendmail("alice@example.org", [f"{TEST_USER}@mx.example.test"], message(token))
    wait_for(lambda: f"filter {token}".encode() in b.mbox(TEST_USER), 60, "the message in B's mailbox")
    box = b.mbox(TEST_USER).decode()
    assert box.count(f"Subject: filter {token}") == 1 and box.count("X-Filtered:") == 1, box
    assert f"filter {token}".encode() not in a.mbox(TEST_USER)
    assert handler.seen == 1
    a.wait_log(rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{fport}, .*status=sent", 30)


def test_filter_down_defers_and_keeps_the_mail(mail_instance):
    dead = free_port()  # nothing listens there
    inst = mail_instance(master_cf=DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n",
                         main_extra=f"content_filter = smtp:[127.0.0.1]:{dead}\n")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.sendmail("alice@example.org", [f"{TEST_USER}@mx.example.test"], message("down"))
    inst.wait_log(rf"relay=none, .*status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:{dead}: Connection "
                  r"refused\)", 30)
    assert b"filter down" not in inst.mbox(TEST_USER)


def test_filter_action_of_a_header_check_routes_one_message(mail_instance, content_filter):
    """header_checks FILTER transport:destination sends that message (and only that one) to the filter,
    with no content_filter set."""
    reinject = free_port()
    handler, fport = content_filter(reinject)
    master_cf = DEFAULT_MASTER_CF + (
        "smtp      unix  -       -       n       -       -       smtp\n"
        f"127.0.0.1:{reinject} inet n - n - - smtpd\n"
        # Postfix's re-injection idiom: cleanup skips the checks for what this listener takes.
        "  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks\n")
    inst = mail_instance(master_cf=master_cf, main_extra="mynetworks = 127.0.0.0/8\n")
    # In the instance's own directory: cleanup (mail_owner) must be able to read it.
    checks = inst.etc / "header_checks"
    checks.write_text(f"/^Subject: filter me/ FILTER smtp:[127.0.0.1]:{fport}\n")
    with open(inst.main_cf, "a") as f:
        f.write(f"header_checks = regexp:{checks}\n")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.sendmail("alice@example.org", [f"{TEST_USER}@mx.example.test"], "Subject: filter me\r\n\r\nx\r\n")
        s.sendmail("alice@example.org", [f"{TEST_USER}@mx.example.test"], "Subject: leave me\r\n\r\ny\r\n")
    try:
        wait_for(lambda: inst.mbox(TEST_USER).count(b"Subject: ") == 2, 60, "both messages delivered")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{inst.logtext()[-3000:]}") from None
    box = inst.mbox(TEST_USER).decode()
    assert box.count("X-Filtered:") == 1 and handler.seen == 1, box
    filtered = box[box.index("X-Filtered:"):]
    assert "Subject: filter me" in filtered.split("\nFrom ")[0], box


def test_receive_override_no_address_mappings(mail_instance):
    """A listener with -o receive_override_options=no_address_mappings skips virtual_alias_maps (the
    mail was mapped before the filter); the main listener still maps."""
    plain = free_port()
    master_cf = DEFAULT_MASTER_CF + (f"127.0.0.1:{plain} inet n - n - - smtpd\n"
                                     "  -o receive_override_options=no_address_mappings\n")
    inst = mail_instance(master_cf=master_cf,
                         main_extra=f"virtual_alias_maps = inline:{{ alias@mx.example.test={TEST_USER}@mx.example.test }}\n"
                                    "mynetworks = 127.0.0.0/8\n")
    inst.start()
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.sendmail("alice@example.org", ["alias@mx.example.test"], "Subject: mapped\r\n\r\nx\r\n")
    with smtplib.SMTP("127.0.0.1", plain, timeout=30) as s:
        s.sendmail("alice@example.org", ["alias@mx.example.test"], "Subject: not mapped\r\n\r\nx\r\n")
    inst.wait_log(r"to=<alias@mx\.example\.test>, relay=local, .*status=bounced \(unknown user", 30)
    wait_for(lambda: b"Subject: mapped" in inst.mbox(TEST_USER), 30, "the mapped message")
    assert b"Subject: not mapped" not in inst.mbox(TEST_USER)
