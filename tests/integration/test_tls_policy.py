"""test_tls_policy.py: smtpd_tls_* / smtp_tls_* protocols and cipher grades, with real OpenSSL handshakes on loopback.

Server side: a Python ssl client limited to TLS 1.2 against an smtpd that allows only TLS 1.3, and one that
allows 1.3. Client side: the smtp agent with mandatory TLS >= 1.3 against a peer that speaks at most TLS 1.2.
"""
import os
import re
import smtplib
import socket
import ssl
import types

import pytest

import smtp_peer
from mailinstance import wait_for
from smtp_peer import SmtpPeer, make_cert
from test_smtp_client import SMTP_ONLY_MASTER_CF, deliver

SMTPD_ONLY = "{port}    inet  n       -       n       -       -       smtpd\n"
BASE = "mynetworks = 127.0.0.1/32\n"
TIMEOUT = 10


# ---- server side ----

def smtpd_tls_instance(mail_instance, extra, master_cf=SMTPD_ONLY):
    inst = mail_instance(master_cf=master_cf, main_extra=BASE + extra)
    (inst.root / "tls").mkdir()
    cert, key = make_cert(inst.root / "tls", cn="mx.example.test")
    os.chmod(key, 0o600)  # root's key, as on a real system: smtpd reads it before dropping privileges
    inst.postconf(f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}")
    inst.start()
    wait_for(lambda: port_open(inst.port), TIMEOUT, f"port {inst.port}")
    return inst


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def client_ctx(maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def ehlo_lines(c):
    code, msg = c.ehlo("client.example.test")
    assert code == 250
    return msg.decode().splitlines()


def test_smtpd_tls13_only_refuses_a_tls12_client(mail_instance):
    inst = smtpd_tls_instance(mail_instance, "smtpd_tls_security_level = may\n"
                                             "smtpd_tls_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=TIMEOUT) as c:
        assert "STARTTLS" in ehlo_lines(c)
        with pytest.raises((ssl.SSLError, OSError)):
            c.starttls(context=client_ctx(maximum=ssl.TLSVersion.TLSv1_2))
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=TIMEOUT) as c:
        ehlo_lines(c)
        assert c.starttls(context=client_ctx())[0] == 220
        assert c.sock.version() == "TLSv1.3"
        assert "STARTTLS" not in ehlo_lines(c)
    inst.wait_log(r"Anonymous TLS connection established from \S+\[127\.0\.0\.1\]: TLSv1\.3 with cipher \S+")


def test_smtpd_encrypt_uses_the_mandatory_protocols(mail_instance):
    # The opportunistic setting would allow TLS 1.2; encrypt must use the mandatory one.
    inst = smtpd_tls_instance(mail_instance, "smtpd_tls_security_level = encrypt\n"
                                             "smtpd_tls_protocols = >=TLSv1.2\n"
                                             "smtpd_tls_mandatory_protocols = >=TLSv1.3\n"
                                             "smtpd_tls_mandatory_ciphers = high\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=TIMEOUT) as c:
        ehlo_lines(c)
        with pytest.raises((ssl.SSLError, OSError)):
            c.starttls(context=client_ctx(maximum=ssl.TLSVersion.TLSv1_2))
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=TIMEOUT) as c:
        ehlo_lines(c)
        assert c.starttls(context=client_ctx())[0] == 220
        ehlo_lines(c)
        assert c.docmd("MAIL FROM:<a@example.org>")[0] == 250


def test_smtpd_tls12_ceiling_with_high_ciphers(mail_instance):
    inst = smtpd_tls_instance(mail_instance, "smtpd_tls_security_level = may\n"
                                             "smtpd_tls_protocols = >=TLSv1.2, <=TLSv1.2\n"
                                             "smtpd_tls_ciphers = high\n"
                                             "smtpd_tls_exclude_ciphers = aNULL, CHACHA20\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=TIMEOUT) as c:
        ehlo_lines(c)
        assert c.starttls(context=client_ctx())[0] == 220
        assert c.sock.version() == "TLSv1.2"
        assert "CHACHA20" not in c.sock.cipher()[0]
    inst.wait_log(r"Anonymous TLS connection established from \S+: TLSv1\.2 with cipher ")


def test_smtpd_bad_protocols_disable_starttls(mail_instance):
    inst = smtpd_tls_instance(mail_instance, "smtpd_tls_security_level = may\n"
                                             "smtpd_tls_protocols = !SSLv2, !TLSv9\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=TIMEOUT) as c:
        assert "STARTTLS" not in ehlo_lines(c)
    inst.wait_log(r"warning: smtpd_tls_protocols: unknown TLS protocol \"TLSv9\".*STARTTLS support is disabled")


def test_smtpd_insecure_grade_is_refused(mail_instance):
    inst = smtpd_tls_instance(mail_instance, "smtpd_tls_security_level = may\nsmtpd_tls_ciphers = export\n")
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=TIMEOUT) as c:
        assert "STARTTLS" not in ehlo_lines(c)
    inst.wait_log(r"smtpd_tls_ciphers = export: refused, that cipher grade is insecure.*STARTTLS support is disabled")


def test_smtpd_encrypt_with_bad_protocols_stops_with_a_clear_message(mail_instance):
    inst = smtpd_tls_instance(mail_instance, "smtpd_tls_security_level = encrypt\n"
                                             "smtpd_tls_mandatory_protocols = >=TLSv1.2, !TLSv1.3, !TLSv1.2\n")
    # A connection makes the master start smtpd, which stops at once: no mail is taken in the clear.
    with socket.create_connection(("127.0.0.1", inst.port), timeout=TIMEOUT):
        pass
    inst.wait_log(r"fatal: smtpd_tls_mandatory_protocols = .* leaves no TLS protocol enabled.*"
                  r"mandatory TLS \(smtpd_tls_security_level = encrypt or wrapper mode\) cannot work")


# ---- client side ----

@pytest.fixture
def peer():
    p = SmtpPeer()
    yield p
    p.close()


@pytest.fixture
def smtp_instance(mail_instance, tmp_path):
    # The agent runs as mail_owner: it must reach the instance under pytest's 0700 directories.
    for p in [tmp_path, *tmp_path.parents]:
        if str(p) in ("/", "/tmp"):
            break
        os.chmod(p, os.stat(p).st_mode | 0o011)

    def make(extra):
        inst = mail_instance(master_cf=SMTP_ONLY_MASTER_CF, main_extra=extra)
        inst.start()
        return inst
    return make


@pytest.fixture
def tls12_peer(peer, tmp_path, monkeypatch):
    """The test peer with STARTTLS limited to TLS 1.2 (its context is made inside smtp_peer)."""
    def tls12_context(protocol):
        ctx = ssl.SSLContext(protocol)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx
    monkeypatch.setattr(smtp_peer, "ssl", types.SimpleNamespace(
        SSLContext=tls12_context, PROTOCOL_TLS_SERVER=ssl.PROTOCOL_TLS_SERVER, SSLError=ssl.SSLError))
    peer.starttls = make_cert(tmp_path)
    return peer


def test_client_mandatory_tls13_defers_a_tls12_peer(smtp_instance, tls12_peer):
    inst = smtp_instance("smtp_tls_security_level = encrypt\n"
                         "smtp_tls_protocols = >=TLSv1\n"
                         "smtp_tls_mandatory_protocols = >=TLSv1.3\n")
    qid, replies = deliver(inst, f"[127.0.0.1]:{tls12_peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred", replies
    assert replies[0]["dsn"].startswith("4.7."), replies
    assert replies[0]["reason"].startswith("TLS handshake with 127.0.0.1[127.0.0.1] failed"), replies
    assert tls12_peer.messages() == []


def test_client_mandatory_tls12_delivers_to_a_tls12_peer(smtp_instance, tls12_peer):
    inst = smtp_instance("smtp_tls_security_level = encrypt\nsmtp_tls_loglevel = 1\n"
                         "smtp_tls_mandatory_protocols = >=TLSv1.2\nsmtp_tls_mandatory_ciphers = high\n")
    qid, replies = deliver(inst, f"[127.0.0.1]:{tls12_peer.port}", "bob@example.net")
    assert replies[0]["status"] == "sent", replies
    inst.wait_log(rf"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:{tls12_peer.port}: "
                  r"TLSv1\.2 with cipher ")


@pytest.mark.parametrize("setting, named", [
    ("smtp_tls_mandatory_protocols = >=TLSv1.2, TLSv9", r"smtp_tls_mandatory_protocols: unknown TLS protocol \"TLSv9\""),
    ("smtp_tls_mandatory_ciphers = low", r"smtp_tls_mandatory_ciphers = low: refused, that cipher grade is insecure"),
])
def test_client_bad_setting_defers_naming_the_parameter(smtp_instance, tls12_peer, setting, named):
    inst = smtp_instance(f"smtp_tls_security_level = encrypt\n{setting}\n")
    qid, replies = deliver(inst, f"[127.0.0.1]:{tls12_peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred", replies
    assert replies[0]["reason"].startswith("TLS is unavailable: "), replies
    assert re.search(named, replies[0]["reason"]), replies
    assert tls12_peer.messages() == []
    inst.wait_log(named + r".*deliveries that would use TLS are deferred")
