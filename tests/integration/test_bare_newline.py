"""test_bare_newline.py: smtpd_forbid_bare_newline through whole instances (smtpd, cleanup, qmgr, local).

The default is Postfix 3.9's "normalize": a bare <LF> ends a command or content line as <CR><LF>
would, and only <CR><LF>.<CR><LF> ends DATA, so no smuggling variant can start a second message.
"reject" answers 521 and disconnects, except for smtpd_forbid_bare_newline_exclusions.
"""
import smtplib

import pytest

from mailinstance import TEST_USER, wait_for
from smtpraw import Raw

RCPT = f"{TEST_USER}@localhost"


def start_data(r, line_end=b"\r\n"):
    """Greeting, EHLO, MAIL, RCPT and DATA, each line ended by line_end."""
    assert r.reply().startswith("220 ")
    for cmd, code in ((b"EHLO client.example", "250"), (b"MAIL FROM:<a@example.org>", "250"),
                      (b"RCPT TO:<" + RCPT.encode() + b">", "250"), (b"DATA", "354")):
        r.send(cmd + line_end)
        rep = r.reply()
        assert rep.startswith(code), (cmd, rep)


def instance(mail_instance, extra=""):
    inst = mail_instance(main_extra="mynetworks = 127.0.0.1/32\n" + extra)
    inst.start()
    return inst


def delivered(inst, count):
    """Wait until `count` messages are in the recipient's mbox; returns the mbox bytes."""
    def box():
        text = inst.mbox(TEST_USER)
        n = text.count(b"\nFrom ") + (1 if text.startswith(b"From ") else 0)
        return text if n >= count else None

    return wait_for(box, 20, f"{count} message(s) in the mbox")


def test_default_normalizes_smtplib_bytes(mail_instance):
    """smtplib handed bytes sends bare <LF> line ends as written: the mail is taken, lines intact."""
    inst = instance(mail_instance)
    body = b"From: a@example.org\nSubject: bare lf\n\nfirst line\nsecond line\n"
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        refused = c.sendmail("a@example.org", [RCPT], body)
    assert refused == {}
    box = delivered(inst, 1)
    assert b"\nSubject: bare lf\n" in box
    assert b"\nfirst line\nsecond line\n" in box
    assert b"\r" not in box  # stored as <CR><LF> in the queue, written as lines in the mbox


@pytest.mark.parametrize("payload", [
    b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\n",   # <LF>.<LF> as an end of data
    b"Subject: a\r\n\r\nx\r\n.\nMAIL FROM:<evil@x>\r\n.\r\n",  # <CR><LF>.<LF>
    b"Subject: a\r\n\r\nx\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n",  # <LF>.<CR><LF>
    b"Subject: a\r\n\r\nx\r.\r\nMAIL FROM:<evil@x>\r\n.\r\n",  # <CR>.<CR><LF>: a bare <CR> is content
])
def test_normalize_never_ends_data_early(mail_instance, payload):
    """Every smuggling variant stays one message: the would-be command is content."""
    inst = instance(mail_instance)
    r = Raw(inst.port)
    start_data(r)
    r.send(payload + b"QUIT\r\n")
    assert r.reply().startswith("250 2.0.0 Ok: queued as ")
    assert r.reply().startswith("221 ")
    box = delivered(inst, 1)
    assert b"MAIL FROM:<evil@x>" in box
    inst.wait_log(r"disconnect from .* ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
    assert "evil@x" not in inst.logtext()  # no second transaction was ever seen


def test_normalize_accepts_bare_lf_commands(mail_instance):
    inst = instance(mail_instance)
    r = Raw(inst.port)
    start_data(r, line_end=b"\n")
    r.send(b"Subject: lf commands\n\nhello\r\n.\r\n")
    assert r.reply().startswith("250 2.0.0 Ok: queued as ")
    assert b"\nhello\n" in delivered(inst, 1)


def test_reject_refuses_bare_lf_command(mail_instance):
    inst = instance(mail_instance, "smtpd_forbid_bare_newline = reject\n"
                    "smtpd_forbid_bare_newline_exclusions =\n")
    r = Raw(inst.port)
    assert r.reply().startswith("220 ")
    r.send(b"EHLO x\n")
    assert r.reply() == "521 5.5.2 mx.example.test Error: bare <LF> received"
    assert r.closed()


def test_reject_exempts_excluded_clients(mail_instance):
    """The default exclusions are $mynetworks: a trusted client is normalized, not refused."""
    inst = instance(mail_instance, "smtpd_forbid_bare_newline = reject\n")
    r = Raw(inst.port)
    start_data(r)
    r.send(b"Subject: trusted\r\n\r\nbare\nline\r\n.\r\n")
    assert r.reply().startswith("250 2.0.0 Ok: queued as ")
    assert b"\nbare\nline\n" in delivered(inst, 1)


def test_invalid_value_warns_and_normalizes(mail_instance):
    inst = instance(mail_instance, "smtpd_forbid_bare_newline = sometimes\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        assert c.sendmail("a@example.org", [RCPT], b"Subject: typo\n\nbody\n") == {}
    inst.wait_log(r'invalid smtpd_forbid_bare_newline value "sometimes": using "normalize"')
    assert b"\nbody\n" in delivered(inst, 1)
