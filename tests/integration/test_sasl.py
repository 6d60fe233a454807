"""test_sasl.py: AUTH through a real, private Dovecot, and the submission (587) and smtps (465) services."""
import base64
import os
import pathlib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import tool
from mailinstance import DEFAULT_MASTER_CF, free_port, wait_for

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}
# smtpd, cleanup and qmgr: accepted mail is queued (no smtp transport: remote mail stays deferred).
SMTPD_ONLY = DEFAULT_MASTER_CF
# The client (127.0.0.1) is not in mynetworks: only AUTH lets it relay.
BASE = "mynetworks = 192.0.2.0/24\nsmtpd_error_sleep_time = 0\n"

pytestmark = pytest.mark.skipif(not os.path.exists(DOVECOT), reason="dovecot-core is not installed")


class Dovecot:
    """A private Dovecot: its own base_dir, passwd-file users, only the auth service, logging to a file."""

    def __init__(self, root, unix_path=None, inet_port=None):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.log = self.root / "dovecot.log"
        users = self.root / "users"
        users.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in USERS.items()))
        listeners = ""
        if unix_path:
            listeners += f"  unix_listener {unix_path} {{\n    mode = 0666\n  }}\n"
        if inet_port:
            listeners += f"  inet_listener {{\n    address = 127.0.0.1\n    port = {inet_port}\n  }}\n"
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(
            f"base_dir = {self.root}/run\n"
            f"state_dir = {self.root}/state\n"
            f"instance_name = postd-test-{self.root.name}-{os.getpid()}\n"
            f"log_path = {self.log}\n"
            "protocols =\n"
            "listen = 127.0.0.1\n"
            "ssl = no\n"
            "auth_mechanisms = plain login\n"
            # Our own delay (smtpd_error_sleep_time) is what the tests measure.
            "auth_failure_delay = 0\n"
            "disable_plaintext_auth = no\n"
            "auth_verbose = yes\n"
            f"passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {users}\n}}\n"
            "userdb {\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}\n"
            f"service auth {{\n{listeners}}}\n")
        self.unix_path, self.inet_port = unix_path, inet_port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"dovecot exited: {self.proc.stderr.read().decode()}")
            if self.unix_path:
                return os.path.exists(self.unix_path)
            try:
                socket.create_connection(("127.0.0.1", self.inet_port), timeout=1).close()
                return True
            except OSError:
                return False

        try:
            wait_for(ready, 10, "dovecot's auth listener")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def logtext(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(scope="module")
def dovecot():
    root = pathlib.Path(tempfile.mkdtemp(prefix="postd-dovecot-", dir="/tmp"))
    os.chmod(root, 0o755)  # Dovecot's auth worker runs as the dovecot user
    d = Dovecot(root / "dovecot", inet_port=free_port())
    d.start()
    yield d
    d.stop()
    if os.environ.get("POSTD_KEEP_DOVECOT") is None:
        shutil.rmtree(root, ignore_errors=True)


def make_cert(d):
    d.mkdir(exist_ok=True)
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.example.test",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_port(port, tls=False, timeout=20):
    def ok():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if tls:
                    with client_ctx().wrap_socket(s, server_hostname="mx") as t:
                        return t.recv(512).startswith(b"220")
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    wait_for(ok, timeout, f"port {port}")


def sasl_instance(mail_instance, sasl_path, extra="", master_cf=SMTPD_ONLY, tls=False, start=True):
    inst = mail_instance(master_cf=master_cf, main_extra=BASE + "smtpd_sasl_auth_enable = yes\n"
                         "smtpd_sasl_type = dovecot\n" f"smtpd_sasl_path = {sasl_path}\n"
                         # Remote mail stays in the queue (nothing listens there), to be read back.
                         f"relayhost = [127.0.0.1]:{free_port()}\n" + extra)
    if tls:
        cert, key = make_cert(inst.root / "tls")
        inst.postconf(f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}")
    if start:
        inst.start()
    return inst


def plain(user, password=None):
    return base64.b64encode(f"\0{user}\0{password or USERS[user]}".encode()).decode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Raw:
    """A line-level SMTP client that shows every reply as the server wrote it."""

    def __init__(self, port, tls=False, timeout=15.0):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = client_ctx().wrap_socket(sock, server_hostname="mx") if tls else sock
        self.buf = b""

    def starttls(self):
        self.sock = client_ctx().wrap_socket(self.sock, server_hostname="mx")

    def reply(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" " or len(line) == 3:
                    text = b"\r\n".join(lines[: i + 1]).decode()
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return text
            chunk = self.sock.recv(4096)
            if not chunk:
                return ""
            self.buf += chunk
        raise AssertionError(f"no reply within 15 s; have {self.buf!r}")

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()


def ehlo_auth(text):
    """The mechanisms of the AUTH keyword of an EHLO reply, or None."""
    for line in text.splitlines():
        if line[4:].startswith("AUTH"):
            return line[4:].split()[1:]
    return None


def find_queue_file(inst, qid):
    for p in inst.spool.rglob(qid):
        if p.is_file():
            return p
    return None


def queue_attrs(inst, qid):
    """The attributes of a queued message, read with qfile-dump (bounded wait while qmgr moves it)."""
    def dump():
        p = find_queue_file(inst, qid)
        if not p:
            return None
        r = subprocess.run([tool("qfile-dump"), str(p)], capture_output=True, timeout=10)
        return r.stdout.decode(errors="replace") if r.returncode == 0 else None

    return wait_for(dump, 20, f"queue file {qid}")


# ---- AUTH mechanisms, relaying, failure ----


def test_auth_plain_and_login_permit_relaying(mail_instance, dovecot):
    inst = sasl_instance(mail_instance, f"inet:127.0.0.1:{dovecot.inet_port}",
                         "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n"
                         "smtpd_sasl_authenticated_header = yes\n")
    wait_port(inst.port)
    c = Raw(inst.port)
    assert c.reply().startswith("220")
    assert ehlo_auth(c.cmd("EHLO client.example")) == ["PLAIN", "LOGIN"]
    # Not authenticated yet: a remote recipient is refused.
    assert c.cmd("MAIL FROM:<alice@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<x@remote.example>").startswith("554 5.7.1 <x@remote.example>: Relay access denied")
    # AUTH is refused inside a transaction, as Postfix does.
    assert c.cmd(f"AUTH PLAIN {plain('alice')}") == "503 5.5.1 Error: MAIL transaction in progress"
    assert c.cmd("RSET").startswith("250")
    assert c.cmd(f"AUTH PLAIN {plain('alice')}") == "235 2.7.0 Authentication successful"
    assert c.cmd(f"AUTH PLAIN {plain('alice')}") == "503 5.5.1 Error: already authenticated"
    assert c.cmd("MAIL FROM:<alice@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<x@remote.example>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    r = c.cmd("Subject: relayed\r\n\r\nhello\r\n.")
    assert r.startswith("250 2.0.0 Ok: queued as ")
    qid = r.split()[-1]
    c.cmd("QUIT")
    c.close()
    inst.wait_log(rf"{qid}: client=\S+\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=alice")
    dump = queue_attrs(inst, qid)
    assert "attr sasl_username=alice" in dump
    # smtpd_sasl_authenticated_header, and RFC 3848's protocol name.
    assert re.search(r"Received: from client\.example \(\S+ \[127\.0\.0\.1\]\)\n"
                     r"\t\(Authenticated sender: alice\)\n\tby mx\.example\.test \(Postfix\) with ESMTPA id ", dump), dump

    # LOGIN: two 334 challenges as Dovecot sends them, then success; relaying is permitted.
    c = Raw(inst.port)
    c.reply()
    c.cmd("EHLO client.example")
    assert c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert c.cmd(b64("bob")) == "334 UGFzc3dvcmQ6"
    assert c.cmd(b64(USERS["bob"])) == "235 2.7.0 Authentication successful"
    assert c.cmd("MAIL FROM:<bob@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<y@remote.example>").startswith("250")
    c.close()

    # PLAIN without an initial response: an empty 334, then the response; "*" cancels.
    c = Raw(inst.port)
    c.reply()
    c.cmd("EHLO client.example")
    assert c.cmd("AUTH PLAIN") == "334 "
    assert c.cmd("*") == "501 5.7.0 Authentication aborted"
    assert c.cmd("AUTH CRAM-MD5") == "504 5.5.4 Unsupported authentication mechanism"
    assert c.cmd("AUTH PLAIN") == "334 "
    assert c.cmd(plain("alice")) == "235 2.7.0 Authentication successful"
    assert c.cmd("QUIT").startswith("221")
    c.close()
    inst.wait_log(r"disconnect from \S+\[127\.0\.0\.1\] ehlo=1 auth=1/3 quit=1 commands=3/5")


def test_wrong_password_is_refused_slowed_and_not_logged(mail_instance, dovecot):
    inst = sasl_instance(mail_instance, f"inet:127.0.0.1:{dovecot.inet_port}",
                         "smtpd_error_sleep_time = 1s\nsmtpd_hard_error_limit = 3\n")
    wait_port(inst.port)
    password = "Wrong-Pass-XYZ"
    c = Raw(inst.port)
    c.reply()
    c.cmd("EHLO client.example")
    # Another session is served while the failed one is held back.
    other_times = []

    def other():
        o = Raw(inst.port)
        t0 = time.monotonic()
        o.reply()
        o.cmd("EHLO other.example")
        other_times.append(time.monotonic() - t0)
        o.close()

    t0 = time.monotonic()
    c.sock.sendall(f"AUTH PLAIN {plain('alice', password)}\r\n".encode())
    time.sleep(0.2)
    th = threading.Thread(target=other)
    th.start()
    r = c.reply()
    elapsed = time.monotonic() - t0
    th.join(15)
    assert r == "535 5.7.8 Error: authentication failed: authentication failure"
    assert elapsed >= 0.9, elapsed
    assert other_times and other_times[0] < 0.7, other_times
    # LOGIN with a wrong password, then the third error ends the session.
    assert c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert c.cmd(b64("bob")) == "334 UGFzc3dvcmQ6"
    assert c.cmd(b64(password)).startswith("535 5.7.8 Error: authentication failed")
    r = c.cmd("AUTH PLAIN " + plain("bob", password))
    assert r.startswith("535 5.7.8"), r
    assert "421 4.7.0 mx.example.test Error: too many errors" in r + "\n" + c.reply()
    c.close()
    inst.wait_log(r"warning: \S+\[127\.0\.0\.1\]: SASL PLAIN authentication failed: authentication failure, "
                  r"sasl_username=alice")
    inst.wait_log(r"warning: \S+\[127\.0\.0\.1\]: SASL LOGIN authentication failed: .*sasl_username=bob")
    log = inst.logtext()
    for secret in (password, plain("alice", password), b64(password)):
        assert secret not in log
    for secret in USERS.values():
        assert secret not in log


def test_dovecot_down_is_a_temporary_failure(mail_instance):
    inst = sasl_instance(mail_instance, f"inet:127.0.0.1:{free_port()}")
    wait_port(inst.port)
    c = Raw(inst.port)
    c.reply()
    # Without Dovecot's mechanism list there is nothing to advertise ...
    assert ehlo_auth(c.cmd("EHLO client.example")) is None
    # ... and an AUTH anyway gets a temporary failure; the session and the server go on.
    assert c.cmd(f"AUTH PLAIN {plain('alice')}") == "454 4.7.0 Temporary authentication failure"
    assert c.cmd("NOOP").startswith("250")
    c.close()
    c = Raw(inst.port)
    assert c.reply().startswith("220")
    c.close()
    inst.wait_log(r"warning: SASL: connect to inet:127\.0\.0\.1:\d+: Connection refused")


def test_unix_socket_under_queue_directory(mail_instance):
    inst = sasl_instance(mail_instance, "private/auth")
    d = Dovecot(inst.root / "dovecot", unix_path=inst.spool / "private" / "auth")
    try:
        d.start()
        wait_port(inst.port)
        c = Raw(inst.port)
        c.reply()
        assert ehlo_auth(c.cmd("EHLO client.example")) == ["PLAIN", "LOGIN"]
        assert c.cmd(f"AUTH PLAIN {plain('bob')}") == "235 2.7.0 Authentication successful"
        c.close()
        # Dovecot stops: the next AUTH is a temporary failure, then it is back and AUTH works again.
        d.stop()
        c = Raw(inst.port)
        c.reply()
        c.cmd("EHLO client.example")
        assert c.cmd(f"AUTH PLAIN {plain('bob')}") == "454 4.7.0 Temporary authentication failure"
        c.close()
    finally:
        d.stop()


def test_cyrus_is_refused_at_start(mail_instance, dovecot):
    inst = sasl_instance(mail_instance, "smtpd", "smtpd_sasl_type = cyrus\n")
    try:
        socket.create_connection(("127.0.0.1", inst.port), timeout=5).close()
    except OSError:
        pass
    inst.wait_log(r"smtpd_sasl_type = cyrus is not supported: postd authenticates through Dovecot only")


def test_sender_login_mismatch(mail_instance, dovecot):
    inst = sasl_instance(mail_instance, f"inet:127.0.0.1:{dovecot.inet_port}",
                         "smtpd_sender_login_maps = inline:{alice@example.org=alice, bob@example.org=bob}\n"
                         "smtpd_sender_restrictions = reject_sender_login_mismatch\n"
                         "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n")
    wait_port(inst.port)
    c = Raw(inst.port)
    c.reply()
    c.cmd("EHLO client.example")
    # Not logged in: an owned address may not be used.
    c.cmd("MAIL FROM:<alice@example.org>")
    assert c.cmd("RCPT TO:<postmaster@localhost>") == \
        "553 5.7.1 <alice@example.org>: Sender address rejected: not logged in"
    c.cmd("RSET")
    assert c.cmd(f"AUTH PLAIN {plain('alice')}").startswith("235")
    c.cmd("MAIL FROM:<bob@example.org>")
    assert c.cmd("RCPT TO:<x@remote.example>") == \
        "553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice"
    c.cmd("RSET")
    c.cmd("MAIL FROM:<alice@example.org>")
    assert c.cmd("RCPT TO:<x@remote.example>").startswith("250")
    c.close()
    inst.wait_log(r"NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 553 5\.7\.1 <bob@example\.org>: "
                  r"Sender address rejected: not owned by user alice")


# ---- TLS: auth only inside TLS, the submission and smtps services ----


def test_tls_auth_only_and_noplaintext(mail_instance, dovecot):
    inst = sasl_instance(mail_instance, f"inet:127.0.0.1:{dovecot.inet_port}",
                         "smtpd_tls_security_level = may\nsmtpd_tls_auth_only = yes\n", tls=True)
    wait_port(inst.port)
    c = Raw(inst.port)
    c.reply()
    assert ehlo_auth(c.cmd("EHLO client.example")) is None
    assert c.cmd(f"AUTH PLAIN {plain('alice')}") == "503 5.5.1 Error: authentication not enabled"
    assert c.cmd("STARTTLS").startswith("220")
    c.starttls()
    assert ehlo_auth(c.cmd("EHLO client.example")) == ["PLAIN", "LOGIN"]
    assert c.cmd(f"AUTH PLAIN {plain('alice')}").startswith("235")
    c.close()

    # noplaintext without TLS, only noanonymous inside it: PLAIN and LOGIN appear after STARTTLS.
    inst.postconf("smtpd_tls_auth_only = no", "smtpd_sasl_security_options = noanonymous, noplaintext",
                  "smtpd_sasl_tls_security_options = noanonymous")
    inst.postfix("reload")

    def reloaded_conversation():
        """(AUTH reply in clear, AUTH mechanisms after STARTTLS) from a reloaded smtpd; None while an old
        one answers (it still offers AUTH in clear) or closes the connection as it stops (421)."""
        c = Raw(inst.port)
        try:
            c.reply()
            if ehlo_auth(c.cmd("EHLO client.example")) is not None:
                return None
            in_clear = c.cmd(f"AUTH PLAIN {plain('alice')}")
            if not c.cmd("STARTTLS").startswith("220"):
                return None
            c.starttls()
            return in_clear, ehlo_auth(c.cmd("EHLO client.example"))
        except OSError:
            return None
        finally:
            c.close()

    in_clear, after_tls = wait_for(reloaded_conversation, 20, "the reloaded smtpd")
    assert in_clear == "504 5.5.4 Unsupported authentication mechanism"
    assert after_tls == ["PLAIN", "LOGIN"]


SUBMISSION = ("{sub}    inet  n       -       n       -       -       smtpd\n"
              "  -o syslog_name=postfix/submission\n"
              "  -o smtpd_tls_security_level=encrypt\n"
              "  -o smtpd_sasl_auth_enable=yes\n"
              "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n")
# Seed 004's spelling: the legacy TLS switch instead of the security level.
SUBMISSION_LEGACY = ("{sub}    inet  n       -       n       -       -       smtpd -o smtpd_enforce_tls=yes "
                     "-o smtpd_sasl_auth_enable=yes "
                     "-o smtpd_client_restrictions=permit_sasl_authenticated,reject\n")
SMTPS = ("{sub}    inet  n       -       n       -       -       smtpd\n"
         "  -o syslog_name=postfix/smtps\n"
         "  -o smtpd_tls_wrappermode=yes\n"
         "  -o smtpd_sasl_auth_enable=yes\n"
         "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n")


def submission_instance(mail_instance, dovecot, service):
    sub = free_port()
    master_cf = SMTPD_ONLY + service.replace("{sub}", f"127.0.0.1:{sub}")
    # AUTH is enabled by the service's -o only: main.cf leaves it off for port 25.
    inst = mail_instance(master_cf=master_cf, main_extra=BASE + "smtpd_sasl_type = dovecot\n"
                         f"smtpd_sasl_path = inet:127.0.0.1:{dovecot.inet_port}\n"
                         f"relayhost = [127.0.0.1]:{free_port()}\n")
    cert, key = make_cert(inst.root / "tls")
    inst.postconf(f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}")
    inst.start()
    return inst, sub


@pytest.mark.parametrize("service", [SUBMISSION, SUBMISSION_LEGACY], ids=["current", "seed004-legacy"])
def test_submission_service(mail_instance, dovecot, service):
    inst, sub = submission_instance(mail_instance, dovecot, service)
    wait_port(sub)
    c = Raw(sub)
    c.reply()
    r = c.cmd("EHLO client.example")
    assert "STARTTLS" in r and ehlo_auth(r) is None
    assert c.cmd(f"AUTH PLAIN {plain('alice')}") == "503 5.5.1 Error: authentication not enabled"
    assert c.cmd("MAIL FROM:<alice@example.org>") == "530 5.7.0 Must issue a STARTTLS command first"
    assert c.cmd("STARTTLS").startswith("220")
    c.starttls()
    assert ehlo_auth(c.cmd("EHLO client.example")) == ["PLAIN", "LOGIN"]
    # Not authenticated: smtpd_client_restrictions = permit_sasl_authenticated, reject.
    c.cmd("MAIL FROM:<alice@example.org>")
    assert c.cmd("RCPT TO:<x@remote.example>").startswith("554 5.7.1 ")
    c.cmd("RSET")
    assert c.cmd(f"AUTH PLAIN {plain('alice')}").startswith("235")
    c.cmd("MAIL FROM:<alice@example.org>")
    assert c.cmd("RCPT TO:<x@remote.example>").startswith("250")
    c.close()
    # Port 25 of the same instance offers no AUTH (main.cf leaves it disabled).
    wait_port(inst.port)
    p = Raw(inst.port)
    p.reply()
    assert ehlo_auth(p.cmd("EHLO client.example")) is None
    p.close()
    if "syslog_name" in service:
        inst.wait_log(r"postfix/submission/smtpd\[\d+\]: Anonymous TLS connection established")


def test_smtps_wrappermode(mail_instance, dovecot):
    inst, sub = submission_instance(mail_instance, dovecot, SMTPS)
    wait_port(sub, tls=True)
    # TLS from the first byte: a plaintext client gets no greeting.
    with socket.create_connection(("127.0.0.1", sub), timeout=1.5) as s:
        with pytest.raises(socket.timeout):
            s.recv(10)
    c = Raw(sub, tls=True)
    assert c.reply().startswith("220 ")
    r = c.cmd("EHLO client.example")
    assert "STARTTLS" not in r and ehlo_auth(r) == ["PLAIN", "LOGIN"]
    assert c.cmd(f"AUTH PLAIN {plain('bob')}").startswith("235")
    c.cmd("MAIL FROM:<bob@example.org>")
    assert c.cmd("RCPT TO:<x@remote.example>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    r = c.cmd("Subject: via 465\r\n\r\nhi\r\n.")
    assert r.startswith("250 2.0.0 Ok: queued as ")
    c.close()
    qid = r.split()[-1]
    dump = queue_attrs(inst, qid)
    assert "with ESMTPSA id" in dump and "Authenticated sender" not in dump
    inst.wait_log(rf"postfix/smtps/smtpd\[\d+\]: {qid}: client=\S+\[127\.0\.0\.1\], sasl_method=PLAIN, "
                  r"sasl_username=bob")


def test_swaks_auth_tls_on_submission(mail_instance, dovecot):
    swaks = shutil.which("swaks")
    if not swaks:
        pytest.skip("swaks is not installed")
    inst, sub = submission_instance(mail_instance, dovecot, SUBMISSION)
    wait_port(sub)
    for mech in ("PLAIN", "LOGIN"):
        r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(sub), "--tls", "--auth", mech,
                            "--auth-user", "alice", "--auth-password", USERS["alice"],
                            "--from", "alice@example.org", "--to", "someone@remote.example",
                            "--helo", "client.example", "--header", f"Subject: swaks {mech}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "235 2.7.0 Authentication successful" in r.stdout
        m = re.search(r"250 2\.0\.0 Ok: queued as (\w+)", r.stdout)
        assert m, r.stdout
        inst.wait_log(rf"{m.group(1)}: client=\S+\[127\.0\.0\.1\], sasl_method={mech}, sasl_username=alice")
        assert "attr sasl_username=alice" in queue_attrs(inst, m.group(1))
    # swaks without credentials over the same service: refused by the client restrictions.
    r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(sub), "--tls",
                        "--from", "alice@example.org", "--to", "someone@remote.example"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "554 5.7.1" in r.stdout


def test_broken_sasl_auth_clients_adds_the_old_form(mail_instance, dovecot):
    """broken_sasl_auth_clients = yes: EHLO also says AUTH=PLAIN LOGIN for clients older than RFC 2554;
    by default only the standard AUTH line."""
    for broken, want_old in (("no", False), ("yes", True)):
        inst = sasl_instance(mail_instance, f"inet:127.0.0.1:{dovecot.inet_port}",
                             f"broken_sasl_auth_clients = {broken}\n")
        wait_port(inst.port)
        c = Raw(inst.port)
        assert c.reply().startswith("220")
        lines = c.cmd("EHLO client.example").splitlines()
        c.cmd("QUIT")
        c.close()
        assert "250-AUTH PLAIN LOGIN" in lines, lines
        assert ("250-AUTH=PLAIN LOGIN" in lines) == want_old, lines
        inst.stop()


def test_milter_sees_the_sasl_login(mail_instance, dovecot):
    """smtpd_milters get {auth_type} and {auth_authen} (cleanup runs them with what smtpd passed)."""
    from milter_peer import MilterPeer
    p = MilterPeer()
    try:
        inst = sasl_instance(mail_instance, f"inet:127.0.0.1:{dovecot.inet_port}",
                             "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n"
                             f"smtpd_milters = {p.endpoint()}\n")
        wait_port(inst.port)
        c = Raw(inst.port)
        c.reply()
        c.cmd("EHLO client.example")
        assert c.cmd(f"AUTH PLAIN {plain('bob')}") == "235 2.7.0 Authentication successful"
        assert c.cmd("MAIL FROM:<bob@example.org>").startswith("250")
        assert c.cmd("RCPT TO:<x@remote.example>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        assert c.cmd("Subject: milter sasl\r\n\r\nhello\r\n.").startswith("250 2.0.0 Ok: queued as ")
        c.cmd("QUIT")
        c.close()
        m = p.macros()
        assert m["{auth_type}"] == "PLAIN" and m["{auth_authen}"] == "bob", m
    finally:
        p.stop()
