"""test_virtual_mailbox.py: virtual mailbox domains and the virtual delivery agent (Maildir, mbox, ids)."""
import os
import pwd
import re
import smtplib
import uuid

from conftest import run
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, wait_for

MASTER_CF = DEFAULT_MASTER_CF + """\
virtual   unix  -       n       n       -       -       virtual
"""
SENDER = "sender@example.org"


def table(inst, name, text):
    path = inst.etc / name
    path.write_text(text)
    run("postmap", f"hash:{path}", check=True)
    return f"hash:{path}"


def start(mail_instance, extra=""):
    """An instance with vbox.test: alice has a Maildir, bob an mbox, low a user ID below the minimum."""
    inst = mail_instance(master_cf=MASTER_CF)
    pw = pwd.getpwnam(TEST_USER)
    base = inst.root / "vmail"
    base.mkdir()
    os.chown(base, pw.pw_uid, pw.pw_gid)
    vmailbox = table(inst, "vmailbox", "alice@vbox.test vbox.test/alice/\nbob@vbox.test vbox.test/bob\n"
                                       "low@vbox.test vbox.test/low/\n")
    uids = table(inst, "vuids", f"@vbox.test {pw.pw_uid}\nlow@vbox.test 5\n")
    with open(inst.main_cf, "a") as f:
        f.write("virtual_mailbox_domains = vbox.test\n"
                f"virtual_mailbox_base = {base}\n"
                f"virtual_mailbox_maps = {vmailbox}\n"
                f"virtual_uid_maps = {uids}\n"
                f"virtual_gid_maps = static:{pw.pw_gid}\n"
                # No permit_mynetworks: vbox.test must be accepted as a destination of ours.
                "smtpd_relay_restrictions = reject_unauth_destination\n" + extra)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    return inst, base, pw


def send(inst, rcpts):
    token = uuid.uuid4().hex
    msg = f"From: <{SENDER}>\r\nSubject: vbox {token}\r\n\r\nFrom the body of {token}\r\n"
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(SENDER)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(msg)
    assert code == 250, (code, text)
    return token, re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode()


def test_maildir_and_mbox_under_the_base_as_the_mapped_ids(mail_instance):
    inst, base, pw = start(mail_instance)
    token, qid = send(inst, ["alice@vbox.test", "bob@vbox.test"])
    inst.wait_log(rf"{qid}: to=<alice@vbox\.test>, relay=virtual, .*dsn=2\.0\.0, status=sent "
                  r"\(delivered to maildir\)")
    inst.wait_log(rf"{qid}: to=<bob@vbox\.test>, relay=virtual, .*dsn=2\.0\.0, status=sent "
                  r"\(delivered to mailbox\)")
    inst.wait_log(rf"{qid}: removed")

    new = base / "vbox.test" / "alice" / "new"
    files = list(new.iterdir())
    assert len(files) == 1, files
    data = files[0].read_bytes()
    assert data.startswith(b"Return-Path: <sender@example.org>\nDelivered-To: alice@vbox.test\n")
    assert f"From the body of {token}".encode() in data
    for p in (files[0], new, base / "vbox.test" / "alice"):
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), p
    assert not list((base / "vbox.test" / "alice" / "tmp").iterdir())

    mbox = base / "vbox.test" / "bob"
    text = mbox.read_bytes()
    assert text.startswith(b"From sender@example.org ")
    assert b"Delivered-To: bob@vbox.test\n" in text
    assert f"\n>From the body of {token}\n".encode() in text, "body From_ lines are quoted"
    assert text.endswith(b"\n\n")
    st = mbox.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (pw.pw_uid, pw.pw_gid, 0o600)

    # A second message appends to the same mbox.
    token2, qid2 = send(inst, ["bob@vbox.test"])
    inst.wait_log(rf"{qid2}: to=<bob@vbox\.test>, relay=virtual, .*status=sent")
    text = mbox.read_bytes()
    assert text.count(b"\nFrom sender@example.org ") == 1 and token2.encode() in text


def test_user_id_below_virtual_minimum_uid_is_deferred(mail_instance):
    inst, base, _ = start(mail_instance)
    _, qid = send(inst, ["low@vbox.test"])
    inst.wait_log(rf"{qid}: to=<low@vbox\.test>, relay=virtual, .*dsn=4\.3\.0, status=deferred "
                  r"\(recipient low@vbox\.test: user ID 5 is below virtual_minimum_uid \(100\)")
    assert not (base / "vbox.test" / "low").exists()


def test_unknown_virtual_mailbox_user_refused_at_rcpt(mail_instance):
    inst, _, _ = start(mail_instance)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(SENDER)
        code, text = s.rcpt("nobody@vbox.test")
        assert (code, text.decode()) == (550, "5.1.1 <nobody@vbox.test>: Recipient address rejected: "
                                              "User unknown in virtual mailbox table")
        code, _ = s.rcpt("alice@vbox.test")
        assert code == 250
        code, text = s.rcpt("someone@example.org")
        assert code == 554 and b"Relay access denied" in text, (code, text)


def test_unknown_virtual_mailbox_reject_code(mail_instance):
    """unknown_virtual_mailbox_reject_code = 450: an unknown user is a temporary refusal (4.1.1), e.g.
    while the mailbox table is being migrated."""
    inst, _, _ = start(mail_instance, "unknown_virtual_mailbox_reject_code = 450\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(SENDER)
        code, text = s.rcpt("nobody@vbox.test")
        assert (code, text.decode()) == (450, "4.1.1 <nobody@vbox.test>: Recipient address rejected: "
                                              "User unknown in virtual mailbox table")


def test_virtual_mailbox_limit(mail_instance):
    """virtual_mailbox_limit: a message that would make a Maildir file or grow an mbox past it bounces
    with 5.2.2 (nothing partial stays); small mail still arrives."""
    inst, base, _ = start(mail_instance, "virtual_mailbox_limit = 3000\n")
    send(inst, ["alice@vbox.test", "bob@vbox.test"])  # small: delivered
    wait_for(lambda: len(re.findall(r"relay=virtual, .*status=sent", inst.logtext())) == 2, 30, "two deliveries")
    mbox_before = (base / "vbox.test" / "bob").read_bytes()
    big = "From: <%s>\r\nSubject: big\r\n\r\n" % SENDER + ("z" * 70 + "\r\n") * 60
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.sendmail(SENDER, ["alice@vbox.test", "bob@vbox.test"], big)
    for who in ("alice", "bob"):
        inst.wait_log(rf"to=<{who}@vbox\.test>, relay=virtual, .*dsn=5\.2\.2, status=bounced .*File too large "
                      r"\(virtual_mailbox_limit\)", 30)
    assert (base / "vbox.test" / "bob").read_bytes() == mbox_before
    assert not any(b"Subject: big" in f.read_bytes() for f in (base / "vbox.test" / "alice").rglob("*")
                   if f.is_file())
