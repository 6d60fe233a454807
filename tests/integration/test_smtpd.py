"""test_smtpd.py: the SMTP server role in a real instance: replies, relay control, smuggling, TLS, hand-off."""
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading

import pytest

import mailproto
from smtpraw import Raw
from conftest import BIN, require, tool
from mailinstance import MAIL_OWNER, TEST_USER, wait_for

SMTPD_ONLY = "{port}    inet  n       -       n       -       -       smtpd\n"
# smtpd and the real cleanup, no qmgr: what smtpd accepted stays in incoming/ for the test to read.
WITH_CLEANUP = SMTPD_ONLY + "cleanup   unix  n       -       n       -       0       cleanup\n"
BASE = "mynetworks = 127.0.0.1/32\n"


def smtpd_instance(mail_instance, main_extra="", master_cf=SMTPD_ONLY):
    inst = mail_instance(master_cf=master_cf, main_extra=BASE + main_extra)
    inst.start()
    return inst


def wait_port(port, timeout=10.0):
    def ok():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)
            return True
        except OSError:
            return False

    wait_for(ok, timeout, f"port {port}")


def queued(inst, qid):
    """The queue file incoming/QID as qfile-dump prints it: (envelope and attribute lines, content)."""
    r = subprocess.run([tool("qfile-dump"), str(inst.spool / "incoming" / qid)], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    head, content = r.stdout.split(b"content:\n", 1)
    return head.decode().splitlines(), content


class FakeCleanup:
    """A stand-in for cleanup on private/cleanup: records every submission, answers as told.

    Only for tests about smtpd alone: the exact bytes and attributes smtpd hands over (the real
    cleanup rewrites both), a cleanup that fails on purpose, and whether smtpd ended or dropped its
    cleanup connection. What reaches the queue is tested with the real cleanup (WITH_CLEANUP)."""

    def __init__(self, inst, open_status=0, end_status=0, reason="queue file write error"):
        self.path = inst.spool / "public" / "cleanup"  # mail_proto.h MAIL_PROTO_CLEANUP_SOCKET
        self.open_status = open_status
        self.end_status = end_status
        self.reason = reason
        self.subs = []
        self.n = 0
        if self.path.exists():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o666)
        shutil.chown(self.path, MAIL_OWNER)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        for _ in range(100000):
            if self.stop:
                return
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        c.settimeout(30)
        sub = {"envelope": None, "content": b"", "ended": False, "closed": False}
        self.subs.append(sub)
        try:
            conn = mailproto.Conn.__new__(mailproto.Conn)
            conn.sock = c
            m = conn.recv()
            assert m.get("req") == "open"
            self.n += 1
            qid = f"FAKE{self.n:04d}"
            sub["queue_id"] = qid
            if self.open_status:
                conn.send([("status", self.open_status), ("dsn", "4.3.0"), ("reason", self.reason)])
                return
            conn.send([("status", 0), ("queue_id", qid)])
            rcpts = []  # {req=rcpt} messages come ahead of the envelope: kept as part of it
            for _ in range(100000):
                m = conn.recv()
                req = m.get("req")
                if req == "rcpt":
                    rcpts += m.attrs[1:]
                elif req == "envelope":
                    sub["envelope"] = mailproto.Msg(m.attrs[:1] + rcpts + m.attrs[1:])
                elif req == "content":
                    sub["content"] += dict(m.attrs)["data"]
                elif req == "end":
                    sub["ended"] = True
                    if self.end_status:
                        conn.send([("status", self.end_status), ("dsn", f"{self.end_status}.3.0"),
                                   ("reason", self.reason)])
                    else:
                        conn.send([("status", 0), ("queue_id", qid)])
                    return
        except (ConnectionResetError, OSError, ValueError):
            sub["closed"] = True
        finally:
            c.close()

    def ended(self):
        return [s for s in self.subs if s["ended"]]

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def smtpd(mail_instance):
    inst = smtpd_instance(mail_instance)
    wait_port(inst.port)
    return inst


def test_banner_and_ehlo_keywords(smtpd):
    with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=10) as c:
        code, msg = c.ehlo("client.example.test")
        assert code == 250
        lines = msg.decode().splitlines()
        assert lines[0] == "mx.example.test"
        assert "PIPELINING" in lines
        assert "SIZE 10240000" in lines
        assert "ENHANCEDSTATUSCODES" in lines and "8BITMIME" in lines and "SMTPUTF8" in lines
        assert "STARTTLS" not in lines  # no TLS configured
        assert not any(k.startswith("ETRN") or k.startswith("CHUNKING") for k in lines)
        assert c.docmd("FOO") == (502, b"5.5.2 Error: command not recognized")
        assert c.docmd("RCPT TO:<a@b>")[0] == 503
        assert c.docmd("MAIL FROM:<bad")[0] == 501
    r = Raw(smtpd.port)
    assert r.reply() == "220 mx.example.test ESMTP Postfix"
    assert r.cmd("QUIT").startswith("221 2.0.0")
    smtpd.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] quit=1 commands=1")
    smtpd.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=0/1 rcpt=0/1 quit=1 unknown=0/1 "
                   r"commands=2/5")


def test_vrfy_disabled_by_default(smtpd):
    with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=10) as c:
        code, msg = c.ehlo("x")
        assert "VRFY" not in msg.decode().splitlines()
        assert c.docmd("VRFY root") == (502, b"5.5.1 VRFY command is disabled")
        assert c.docmd(f"VRFY {TEST_USER}@localhost") == (502, b"5.5.1 VRFY command is disabled")


def test_vrfy_enabled(mail_instance):
    inst = smtpd_instance(mail_instance, "disable_vrfy_command = no\n")
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        code, msg = c.ehlo("x")
        assert "VRFY" in msg.decode().splitlines()
        assert c.docmd("VRFY nosuch@localhost")[0] == 550
        assert c.docmd(f"VRFY {TEST_USER}@localhost")[0] == 252


def test_relay_denied_from_outside_mynetworks(smtpd):
    with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=10, source_address=("127.0.0.9", 0)) as c:
        c.ehlo("outside.example")
        assert c.docmd("MAIL FROM:<a@outside.example>")[0] == 250
        code, msg = c.docmd("RCPT TO:<user@remote.example>")
        # smtpd_relay_restrictions' default ends with defer_unauth_destination.
        assert (code, msg) == (454, b"4.7.1 <user@remote.example>: Relay access denied")
    smtpd.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.9\]: 454 4\.7\.1 <user@remote\.example>: "
                   r"Relay access denied; from=<a@outside\.example> to=<user@remote\.example> proto=ESMTP "
                   r"helo=<outside\.example>")


def test_relay_denied_with_reject_unauth_destination(mail_instance):
    inst = smtpd_instance(mail_instance,
                          "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n",
                          WITH_CLEANUP)
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10, source_address=("127.0.0.9", 0)) as c:
        c.ehlo("outside.example")
        c.docmd("MAIL FROM:<a@outside.example>")
        assert c.docmd("RCPT TO:<user@remote.example>") == (554, b"5.7.1 <user@remote.example>: "
                                                                 b"Relay access denied")
        # A local domain is no relaying: it gets past relay control and is accepted.
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>") == (250, b"2.1.5 Ok")


def test_unknown_local_user(mail_instance):
    inst = smtpd_instance(mail_instance, "", WITH_CLEANUP)
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("x")
        c.docmd("MAIL FROM:<a@example.org>")
        assert c.docmd("RCPT TO:<nosuch@localhost>") == (
            550, b"5.1.1 <nosuch@localhost>: Recipient address rejected: User unknown in local recipient table")
        # Known through the alias table or the password file.
        assert c.docmd("RCPT TO:<postmaster@localhost>") == (250, b"2.1.5 Ok")
        assert c.docmd(f"RCPT TO:<{TEST_USER}@mx.example.test>") == (250, b"2.1.5 Ok")


def test_size_limit_at_mail(mail_instance):
    inst = smtpd_instance(mail_instance, "message_size_limit = 1000\n")
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        code, msg = c.ehlo("x")
        assert "SIZE 1000" in msg.decode().splitlines()
        assert c.docmd("MAIL FROM:<a@example.org> SIZE=1001") == (552, b"5.3.4 Message size exceeds fixed limit")
        assert c.docmd("MAIL FROM:<a@example.org> SIZE=1000")[0] == 250


def test_cleanup_unreachable(smtpd):
    with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=10) as c:
        c.ehlo("x")
        c.docmd("MAIL FROM:<a@example.org>")
        assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>") == (451, b"4.3.0 Error: queue file write error")
    smtpd.wait_log(r"warning: connect to .*/public/cleanup: No such file or directory")


def test_pipelining_after_ehlo_is_fine(smtpd):
    # smtpd alone: the exact (unstuffed) bytes and envelope attributes it hands to cleanup.
    fake = FakeCleanup(smtpd)
    try:
        r = Raw(smtpd.port)
        r.reply()
        assert r.cmd("EHLO x").startswith("250-")
        r.send(f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{TEST_USER}@localhost>\r\nRCPT TO:<nosuch@localhost>\r\n"
               "DATA\r\n".encode())
        assert r.reply() == "250 2.1.0 Ok"
        assert r.reply() == "250 2.1.5 Ok"
        assert r.reply().startswith("550 5.1.1")
        assert r.reply().startswith("354 ")
        r.send(b"Subject: hi\r\n\r\nbody\r\n..dot\r\n.\r\n")
        assert r.reply() == "250 2.0.0 Ok: queued as FAKE0001"
        assert r.cmd("QUIT").startswith("221")
        sub = fake.ended()[0]
        assert sub["content"] == b"Subject: hi\n\nbody\n.dot\n"
        env = sub["envelope"]
        assert env.get("sender") == "a@example.org"
        assert env.getall("rcpt") == [f"{TEST_USER}@localhost"]
        assert env.get("client_address") == "127.0.0.1"
        assert env.get("helo_name") == "x" and env.get("protocol") == "ESMTP"
        smtpd.wait_log(r"FAKE0001: client=unknown\[127\.0\.0\.1\]")
        smtpd.wait_log(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 "
                       r"commands=5/6")
    finally:
        fake.close()


def test_pipelining_after_helo_is_dropped(smtpd):
    r = Raw(smtpd.port)
    r.reply()
    assert r.cmd("HELO x").startswith("250 ")
    r.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@localhost>\r\n")
    assert r.reply() == "250 2.1.0 Ok"
    assert r.reply() == "554 5.5.0 Error: SMTP protocol synchronization"
    assert r.closed()
    smtpd.wait_log(r"improper command pipelining after MAIL from unknown\[127\.0\.0\.1\]: RCPT TO:<b@localhost>")


def test_pipelining_after_ehlo_command_itself_is_dropped(smtpd):
    r = Raw(smtpd.port)
    r.reply()
    r.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n")
    assert r.reply().startswith("250-")
    assert r.reply() == "554 5.5.0 Error: SMTP protocol synchronization"
    assert r.closed()


@pytest.mark.parametrize("payload", [
    b"Subject: a\r\n\r\nbare\nline\r\n.\r\n",             # bare LF in content
    b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\n",  # <LF>.<LF> as an end of data
    b"Subject: a\r\n\r\nx\r.\r\nRCPT TO:<e@x>\r\n.\r\n",    # <CR>.<CR><LF> hides nothing either
    b"Subject: a\r\n\r\nx\r\n.\nDATA\r\n.\r\n",            # <CR><LF>.<LF>
])
def test_smuggling_refused(mail_instance, payload):
    """smtpd_forbid_bare_newline = reject (the default, normalize, is in test_bare_newline.py)."""
    inst = smtpd_instance(mail_instance, "smtpd_forbid_bare_newline = reject\n"
                          "smtpd_forbid_bare_newline_exclusions =\n", WITH_CLEANUP)
    wait_port(inst.port)
    r = Raw(inst.port)
    r.reply()
    r.cmd("EHLO x")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert r.cmd(f"RCPT TO:<{TEST_USER}@localhost>").startswith("250")
    assert r.cmd("DATA").startswith("354")
    # cleanup has the queue file open (under its temporary name): the refusal must remove it, not queue it.
    incoming = inst.spool / "incoming"
    assert len(os.listdir(incoming)) == 1, os.listdir(incoming)
    r.send(payload)
    rep = r.reply()
    if b"\r.\r\n" in payload and b"\n" not in payload.replace(b"\r\n", b""):
        # No bare LF at all: the bare CR stays content, the message is whole and legitimate.
        assert rep.startswith("250 2.0.0 Ok: queued as "), rep
        qid = rep.rsplit(" ", 1)[1]
        _, content = queued(inst, qid)
        assert content.endswith(b"\nx\r.\nRCPT TO:<e@x>\n"), content
        assert inst.queue_files("incoming") == [qid]
        return
    assert rep == "521 5.5.2 mx.example.test Error: bare <LF> received"
    assert r.closed()
    # smtpd's disconnect line comes after it told cleanup to drop the file; then nothing is queued.
    inst.wait_log(r"disconnect from unknown\[127\.0\.0\.1\]")
    wait_for(lambda: os.listdir(incoming) == [], 10, "cleanup to remove the unfinished queue file")
    assert "message-id=" not in inst.logtext(), inst.logtext()


def test_size_limit_during_data_queues_nothing(mail_instance):
    inst = smtpd_instance(mail_instance, "message_size_limit = 2000\n")
    wait_port(inst.port)
    # smtpd alone: its own limit, and whether it ends the submission (the stand-in records it).
    fake = FakeCleanup(inst)
    try:
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
            c.ehlo("x")
            c.docmd("MAIL FROM:<a@example.org>")
            c.docmd(f"RCPT TO:<{TEST_USER}@localhost>")
            assert c.docmd("DATA")[0] == 354
            c.send(b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n" * 0 + (b"y" * 78 + b"\r\n") * 100 + b".\r\n")
            assert c.getreply() == (552, b"5.3.4 Message size exceeds fixed limit")
            assert c.docmd("NOOP")[0] == 250
        assert fake.ended() == []
    finally:
        fake.close()


def test_cleanup_failure_at_end(smtpd):
    # smtpd alone: only a stand-in can fail at end-of-data on purpose.
    fake = FakeCleanup(smtpd, end_status=4, reason="queue file write error")
    try:
        with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=10) as c:
            c.ehlo("x")
            c.docmd("MAIL FROM:<a@example.org>")
            c.docmd(f"RCPT TO:<{TEST_USER}@localhost>")
            assert c.docmd("DATA")[0] == 354
            c.send(b"Subject: x\r\n\r\nhello\r\n.\r\n")
            assert c.getreply() == (451, b"4.3.0 queue file write error")
    finally:
        fake.close()


def test_rset_drops_cleanup_connection(smtpd):
    # smtpd alone: whether it drops its cleanup connection, seen from cleanup's side.
    fake = FakeCleanup(smtpd)
    try:
        with smtplib.SMTP("127.0.0.1", smtpd.port, timeout=10) as c:
            c.ehlo("x")
            c.docmd("MAIL FROM:<a@example.org>")
            assert c.docmd(f"RCPT TO:<{TEST_USER}@localhost>")[0] == 250
            assert c.docmd("RSET")[0] == 250
            wait_for(lambda: fake.subs and fake.subs[0]["closed"], 5, "cleanup connection closed")
        assert fake.ended() == []
    finally:
        fake.close()


def test_swaks_delivery_to_fake_cleanup(smtpd):
    # smtpd alone: swaks's pipelined dialog and the HELO name smtpd hands to cleanup.
    require(shutil.which("swaks"), "swaks is not installed (apt-get install swaks)")
    fake = FakeCleanup(smtpd)
    try:
        p = subprocess.run(["swaks", "--server", f"127.0.0.1:{smtpd.port}", "--from", "a@example.org",
                            "--to", f"{TEST_USER}@localhost", "--helo", "swaks.example", "--pipeline"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "250 2.0.0 Ok: queued as FAKE0001" in p.stdout
        assert fake.ended()[0]["envelope"].get("helo_name") == "swaks.example"
    finally:
        fake.close()


# ---- TLS ----

def make_cert(d):
    d.mkdir(exist_ok=True)
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.example.test",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    # Root's key, mode 0600, as on a real system: smtpd loads it before dropping privileges.
    os.chmod(key, 0o600)
    return cert, key


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_instance(mail_instance, tmp_path, extra="", master_cf=SMTPD_ONLY):
    inst = mail_instance(master_cf=master_cf, main_extra=BASE + extra)
    cert, key = make_cert(inst.root / "tls")
    inst.postconf(f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}")
    inst.start()
    return inst


def test_starttls(mail_instance, tmp_path):
    inst = tls_instance(mail_instance, tmp_path, "smtpd_tls_security_level = may\n", WITH_CLEANUP)
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        code, msg = c.ehlo("x")
        assert "STARTTLS" in msg.decode().splitlines()
        assert c.starttls(context=client_ctx())[0] == 220
        code, msg = c.ehlo("x")
        assert "STARTTLS" not in msg.decode().splitlines()
        assert c.docmd("STARTTLS") == (554, b"5.5.1 Error: TLS already active")
        assert c.mail("a@example.org")[0] == 250
        assert c.rcpt(f"{TEST_USER}@localhost")[0] == 250
        code, msg = c.data(b"Subject: t\r\n\r\nsecret\r\n")
        assert code == 250 and msg.startswith(b"2.0.0 Ok: queued as "), (code, msg)
    qid = msg.decode().rsplit(" ", 1)[1]
    head, content = queued(inst, qid)
    # What the real cleanup made of smtpd's TLS attributes: the queue file and the Received: header.
    assert "attr protocol=ESMTPS" in head, head
    tls = next((line[len("attr tls="):] for line in head if line.startswith("attr tls=")), "")
    assert tls.startswith("TLSv1.3 with cipher "), head
    received = content.split(b"\n\t(using ", 1)[1].split(b")\n", 1)[0].decode()
    assert received == tls, (received, content)
    assert f"(Postfix) with ESMTPS id {qid}".encode() in content, content
    assert b"\nSubject: t\n" in content and content.endswith(b"\n\nsecret\n"), content
    inst.wait_log(r"Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher \S+")


def test_starttls_discards_pipelined_plaintext(mail_instance, tmp_path):
    inst = tls_instance(mail_instance, tmp_path, "smtpd_tls_security_level = may\n"
                        "smtpd_forbid_unauth_pipelining = no\n")
    wait_port(inst.port)
    r = Raw(inst.port)
    r.reply()
    r.cmd("EHLO x")
    r.send(b"STARTTLS\r\nRSET\r\n")  # the injected RSET must never be answered inside TLS
    assert r.reply().startswith("220 2.0.0")
    r.sock = client_ctx().wrap_socket(r.sock, server_hostname="mx.example.test")
    assert r.cmd("NOOP") == "250 2.0.0 Ok"
    assert r.cmd("QUIT").startswith("221")


def test_encrypt_requires_starttls(mail_instance, tmp_path):
    inst = tls_instance(mail_instance, tmp_path, "smtpd_tls_security_level = encrypt\n")
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        c.ehlo("x")
        assert c.docmd("MAIL FROM:<a@example.org>") == (530, b"5.7.0 Must issue a STARTTLS command first")
        c.starttls(context=client_ctx())
        c.ehlo("x")
        assert c.docmd("MAIL FROM:<a@example.org>")[0] == 250


def test_enforce_tls_is_encrypt(mail_instance, tmp_path):
    inst = tls_instance(mail_instance, tmp_path, "smtpd_enforce_tls = yes\n")
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        code, msg = c.ehlo("x")
        assert "STARTTLS" in msg.decode().splitlines()
        assert c.docmd("MAIL FROM:<a@example.org>")[0] == 530


def test_wrappermode(mail_instance, tmp_path):
    master_cf = SMTPD_ONLY.replace("smtpd\n", "smtpd -o smtpd_tls_wrappermode=yes\n")
    inst = tls_instance(mail_instance, tmp_path, "", master_cf)
    with smtplib.SMTP_SSL("127.0.0.1", inst.port, timeout=10, context=client_ctx()) as c:
        code, msg = c.ehlo("x")
        assert code == 250 and "STARTTLS" not in msg.decode().splitlines()
        assert c.noop()[0] == 250
    inst.wait_log(r"Anonymous TLS connection established")


def test_bad_certificate_disables_starttls(mail_instance, tmp_path):
    inst = smtpd_instance(mail_instance, f"smtpd_tls_security_level = may\n"
                                         f"smtpd_tls_cert_file = {tmp_path}/missing.pem\n")
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as c:
        code, msg = c.ehlo("x")
        assert code == 250 and "STARTTLS" not in msg.decode().splitlines()
    inst.wait_log(r"warning: cannot load certificate from .*missing\.pem.*STARTTLS support is disabled")


# ---- with the real cleanup ----

def cleanup_built():
    return (BIN / "cleanup").exists()


def test_end_to_end_with_cleanup(mail_instance):
    require(cleanup_built(), f"{BIN}/cleanup is not built")
    master_cf = SMTPD_ONLY + "cleanup   unix  n       -       n       -       0       cleanup\n"
    inst = smtpd_instance(mail_instance, "", master_cf)
    wait_port(inst.port)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as c:
        c.ehlo("x")
        c.docmd("MAIL FROM:<a@example.org>")
        code = c.docmd(f"RCPT TO:<{TEST_USER}@localhost>")[0]
        assert code == 250, inst.logtext()
        assert c.docmd("DATA")[0] == 354
        c.send(b"Subject: real\r\n\r\nhello\r\n.\r\n")
        code, msg = c.getreply()
        assert code == 250 and msg.startswith(b"2.0.0 Ok: queued as "), msg
    qid = msg.decode().rsplit(" ", 1)[1]
    files = inst.queue_files("incoming") + inst.queue_files("active")
    assert any(qid in f for f in files), (qid, files)
    inst.wait_log(rf"{qid}: client=unknown\[127\.0\.0\.1\]")


def open_after_mail(inst):
    """A session that sent MAIL, once cleanup created the queue file smtpd asked for; (session, incoming/)."""
    wait_port(inst.port)
    incoming = inst.spool / "incoming"
    r = Raw(inst.port)
    r.reply()
    r.cmd("EHLO x")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    wait_for(lambda: len(os.listdir(incoming)) == 1, 10, "cleanup to create the queue file after MAIL")
    return r, incoming


def test_queue_file_opened_at_mail_is_private_until_a_recipient_is_accepted(mail_instance):
    """smtpd asks cleanup for the queue file right after MAIL (so that it is ready for the first RCPT), but a
    transaction whose recipients are all refused shows no queue ID anywhere and leaves no file; the next
    transaction's first accepted recipient claims the file opened at its MAIL."""
    inst = smtpd_instance(mail_instance, "mynetworks = 192.0.2.1/32\n", WITH_CLEANUP)  # 127.0.0.1 may not relay
    # Opened before any RCPT: cleanup created the file under its temporary name.
    r, incoming = open_after_mail(inst)
    early = os.listdir(incoming)[0]
    assert early.startswith(".tmp."), early
    rep = r.cmd("RCPT TO:<nobody@elsewhere.example>")  # relay refused
    assert "Relay access denied" in rep, rep
    inst.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]")
    assert r.cmd("RSET").startswith("250")
    wait_for(lambda: os.listdir(incoming) == [], 10, "cleanup to remove the file nobody claimed")
    assert "client=" not in inst.logtext(), inst.logtext()
    # Next transaction: its first accepted recipient takes the file opened at MAIL, whose inode is the ID.
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    wait_for(lambda: len(os.listdir(incoming)) == 1, 10, "cleanup to create the queue file after MAIL")
    inode = os.stat(incoming / os.listdir(incoming)[0]).st_ino
    assert r.cmd(f"RCPT TO:<{TEST_USER}@localhost>").startswith("250")
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: early\r\n\r\nbody\r\n.\r\n")
    rep = r.reply()
    assert rep.startswith("250 2.0.0 Ok: queued as "), rep
    qid = rep.rsplit(" ", 1)[1]
    assert os.stat(incoming / qid).st_ino == inode, "the accepted message is not in the file opened at MAIL"
    assert inst.logtext().count(f"{qid}: client=unknown[127.0.0.1]") == 1, inst.logtext()
    r.cmd("QUIT")


def test_queue_file_opened_at_mail_survives_cleanup_dying_before_rcpt(mail_instance):
    """cleanup dies between MAIL (when smtpd asked it for the queue file) and the first RCPT: smtpd does not
    claim the broken connection but opens the file afresh with the cleanup the master starts next, so the
    message is queued as if nothing happened (no 451 later at DATA)."""
    inst = smtpd_instance(mail_instance, "", WITH_CLEANUP)
    r, incoming = open_after_mail(inst)
    pids = inst.daemon_pids("cleanup")
    assert pids, "no cleanup process"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), 10, "cleanup to be gone")
    assert r.cmd(f"RCPT TO:<{TEST_USER}@localhost>").startswith("250")
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: after the kill\r\n\r\nbody\r\n.\r\n")
    rep = r.reply()
    assert rep.startswith("250 2.0.0 Ok: queued as "), rep
    assert rep.rsplit(" ", 1)[1] in inst.queue_files("incoming")
    r.cmd("QUIT")
