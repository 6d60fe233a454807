"""test_lmtp.py: the lmtp delivery agent against a real Dovecot LMTP server (unix socket and TCP).

One postd instance and one private Dovecot serve the whole module: virtual mailbox domains handed
to Dovecot (virtual_transport, transport_maps with both next-hop syntaxes), local users through
mailbox_transport, a virtual alias fanning out, and per-recipient replies after DATA.
"""
import os
import pathlib
import pwd
import re
import shutil
import smtplib
import tempfile
import uuid

import pytest

import dovecot
from conftest import run
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, MailInstance, wait_for

pytestmark = pytest.mark.skipif(not dovecot.available(),
                                reason="needs Debian's dovecot-core and dovecot-lmtpd")

MASTER_CF = DEFAULT_MASTER_CF + """\
lmtp      unix  -       -       n       -       -       lmtp
store     unix  -       -       n       -       -       lmtp
"""
SENDER = "sender@example.org"
UNIX_RELAY = r"mx\.example\.test\[private/dovecot-lmtp\]"


def table(inst, name, text):
    path = inst.etc / name
    path.write_text(text)
    run("postmap", f"hash:{path}", check=True)
    return f"hash:{path}"


@pytest.fixture(scope="module")
def setup():
    """(instance, dovecot): the instance is started first so that its private/ holds Dovecot's socket."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-lmtp-", dir="/tmp"))
    os.chmod(base, 0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("INVOCATION_ID", raising=False)
        mp.delenv("JOURNAL_STREAM", raising=False)
        inst = MailInstance(base / "inst", master_cf=MASTER_CF)
        pw = pwd.getpwnam(TEST_USER)  # Dovecot stores every user's mail as this one account
        dc = dovecot.Dovecot(base / "dovecot", inst.spool / "private" / "dovecot-lmtp",
                             {"alice": None, "bob": None, "carol": "1B", "dave": None, TEST_USER: None},
                             pw.pw_uid, pw.pw_gid)
        vmailbox = table(inst, "vmailbox", "".join(
            f"{u}@sock.test {u}\n" for u in ("alice", "bob", "carol", "ghost")) +
            "dave@tcp.test dave\ndave@inet.test dave\ndave@down.test dave\ndave@store.test dave\n")
        transport = table(inst, "transport", f"tcp.test lmtp:[127.0.0.1]:{dc.port}\n"
                                             f"inet.test lmtp:inet:127.0.0.1:{dc.port}\n"
                                             "down.test lmtp:unix:private/no-such-socket\n"
                                             "store.test store:unix:private/dovecot-lmtp\n")
        valias = table(inst, "valias", "alias.test x\nteam@alias.test alice@sock.test, bob@sock.test\n")
        with open(inst.main_cf, "a") as f:
            f.write("virtual_mailbox_domains = sock.test, tcp.test, inet.test, down.test, store.test\n"
                    f"virtual_mailbox_maps = {vmailbox}\n"
                    "virtual_transport = lmtp:unix:private/dovecot-lmtp\n"
                    f"transport_maps = {transport}\n"
                    f"virtual_alias_maps = {valias}\n"
                    "mailbox_transport = lmtp:unix:private/dovecot-lmtp\n")
        inst.start()
        try:
            wait_for(lambda: (inst.spool / "private").is_dir(), 20, "the instance's private/")
            dc.start()
            yield inst, dc
        finally:
            inst.stop()
            dc.stop()
            shutil.rmtree(base, ignore_errors=True)


def send(inst, rcpts):
    token = uuid.uuid4().hex
    msg = f"From: <{SENDER}>\r\nSubject: lmtp {token}\r\n\r\nbody of {token}\r\n"
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(SENDER)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(msg)
    assert code == 250, (code, text)
    return token, re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode()


def delivered(dc, user, token):
    return any(token.encode() in m for m in dc.messages(user))


def test_virtual_mailbox_over_the_unix_socket(setup):
    inst, dc = setup
    token, qid = send(inst, ["alice@sock.test"])
    inst.wait_log(rf"{qid}: to=<alice@sock\.test>, relay={UNIX_RELAY}, .*status=sent "
                  r"\(250 2\.0\.0 <alice@sock\.test> \S+ Saved\)")
    inst.wait_log(rf"{qid}: removed")
    assert re.search(r"postfix-test/lmtp\[\d+\]: " + qid, inst.logtext()), "logged by the lmtp service"
    wait_for(lambda: delivered(dc, "alice", token), 10, "the message in alice's Maildir")
    # Dovecot itself finds it: its index and the file agree.
    assert f"body of {token}" in dc.doveadm_fetch("alice", token)


@pytest.mark.parametrize("domain", ["tcp.test", "inet.test"])
def test_virtual_mailbox_over_tcp(setup, domain):
    # lmtp:[127.0.0.1]:PORT and lmtp:inet:127.0.0.1:PORT: no MX lookup, Postfix's host[addr]:port relay.
    inst, dc = setup
    token, qid = send(inst, [f"dave@{domain}"])
    inst.wait_log(rf"{qid}: to=<dave@{re.escape(domain)}>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{dc.port}, "
                  r".*status=sent \(250 2\.0\.0 ")
    wait_for(lambda: delivered(dc, "dave", token), 10, "the message in dave's Maildir")


def test_lmtp_mode_from_the_program_name(setup):
    # A service with another name ("store") that runs the lmtp program speaks LMTP too: argv[0] decides
    # (in SMTP mode Dovecot would refuse EHLO). As in Postfix, the log tag is the program's name.
    inst, dc = setup
    token, qid = send(inst, ["dave@store.test"])
    inst.wait_log(rf"postfix-test/lmtp\[\d+\]: {qid}: to=<dave@store\.test>, relay={UNIX_RELAY}, "
                  r".*status=sent \(250 2\.0\.0 ")
    wait_for(lambda: delivered(dc, "dave", token), 10, "the message in dave's Maildir")


def test_missing_socket_defers(setup):
    inst, _ = setup
    _, qid = send(inst, ["dave@down.test"])
    inst.wait_log(rf"{qid}: to=<dave@down\.test>, relay=none, .*dsn=4\.4\.1, status=deferred \(connect to "
                  r"mx\.example\.test\[private/no-such-socket\]: No such file or directory\)")


def test_per_recipient_replies_after_data(setup):
    # Dovecot accepts both RCPTs, then after the body saves alice's copy and refuses carol's (quota):
    # one reply each, each recorded for its own recipient. ghost is refused at RCPT already.
    inst, dc = setup
    token, qid = send(inst, ["alice@sock.test", "carol@sock.test", "ghost@sock.test"])
    inst.wait_log(rf"{qid}: to=<alice@sock\.test>, relay={UNIX_RELAY}, .*status=sent \(250 2\.0\.0 ")
    inst.wait_log(rf"{qid}: to=<carol@sock\.test>, relay={UNIX_RELAY}, .*dsn=5\.2\.2, status=bounced "
                  rf"\(host {UNIX_RELAY} said: 552 5\.2\.2 <carol@sock\.test> Quota exceeded.*"
                  r"\(in reply to end of DATA command\)\)")
    inst.wait_log(rf"{qid}: to=<ghost@sock\.test>, relay={UNIX_RELAY}, .*dsn=5\.1\.1, status=bounced "
                  r"\(host .* said: 550 5\.1\.1 <ghost@sock\.test> User doesn't exist.*"
                  r"\(in reply to RCPT TO command\)\)")
    text = inst.logtext()
    assert len(re.findall(rf"{qid}: to=<alice@sock\.test>.*status=sent", text)) == 1
    assert len(re.findall(rf"{qid}: to=<carol@sock\.test>.*status=", text)) == 1
    assert delivered(dc, "alice", token)
    assert not delivered(dc, "carol", token)
    # The bounce goes back to the sender (example.org is not ours: it waits in the queue as mail).
    inst.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+")


def test_mailbox_transport_for_local_users(setup):
    inst, dc = setup
    token, qid = send(inst, [f"{TEST_USER}@localhost"])
    inst.wait_log(rf"{qid}: to=<{TEST_USER}@localhost>, relay={UNIX_RELAY}, .*status=sent")
    wait_for(lambda: delivered(dc, TEST_USER, token), 10, "the message in Dovecot's Maildir")
    assert token.encode() not in inst.mbox(TEST_USER), "local did not deliver it itself"


def test_virtual_alias_fans_out_to_two_mailboxes(setup):
    inst, dc = setup
    token, qid = send(inst, ["team@alias.test"])
    for user in ("alice", "bob"):
        inst.wait_log(rf"{qid}: to=<{user}@sock\.test>, orig_to=<team@alias\.test>, relay={UNIX_RELAY}, "
                      r".*status=sent")
        wait_for(lambda: delivered(dc, user, token), 10, f"the message in {user}'s Maildir")


def test_unknown_virtual_mailbox_user_refused_at_rcpt(setup):
    inst, _ = setup
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail(SENDER)
        code, text = s.rcpt("nobody@sock.test")
    assert code == 550, (code, text)
    assert text.decode() == ("5.1.1 <nobody@sock.test>: Recipient address rejected: "
                             "User unknown in virtual mailbox table")
