"""test_smtp_tls_verify.py: the smtp client's TLS fails closed: verify and secure levels, certificate
match strategies, smtp_tls_policy_maps and TLS session resumption, against a real OpenSSL peer.

Certificates come from a test CA made here with openssl; the peer (smtp_peer.SmtpPeer, Python's ssl)
offers STARTTLS with a leaf naming what each test needs. A delivery that must not happen is checked on
the peer's side too: no MAIL FROM reached it.
"""
import os
import re
import shutil
import subprocess

import pytest

from smtp_peer import SmtpPeer
from test_smtp_client import SMTP_ONLY_MASTER_CF, deliver

OPENSSL_TIMEOUT = 60


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=OPENSSL_TIMEOUT)


def make_ca(directory, name):
    """A self-signed CA certificate and key: (cert, key)."""
    cert, key = directory / f"{name}-ca.pem", directory / f"{name}-ca-key.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", f"/CN=postd test CA {name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(cert, 0o644)
    return cert, key


def make_leaf(directory, ca, *dns_names):
    """A server certificate signed by ca naming only dns_names (subjectAltName; CN the first)."""
    stem = directory / ("leaf-" + "-".join(dns_names).replace("*", "star"))
    cert, key, csr, ext = (stem.with_suffix(s) for s in (".pem", ".key", ".csr", ".ext"))
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", f"/CN={dns_names[0]}")
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns_names) + "\n"
                   "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", ext)
    return cert, key


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    return d


@pytest.fixture
def ca(certs):
    return make_ca(certs, "trusted")


@pytest.fixture
def peer():
    p = SmtpPeer()
    yield p
    p.close()


@pytest.fixture
def tls_instance(mail_instance, ca):
    """An smtp-only instance trusting ca, with TLS logging; extra main.cf text as the argument."""

    def make(extra="", policy=None):
        inst = mail_instance(master_cf=SMTP_ONLY_MASTER_CF, main_extra="smtp_tls_loglevel = 1\n" + extra)
        trust_ca(inst, ca)
        if policy is not None:
            inst.postconf("smtp_tls_policy_maps = " + policy_table(inst, policy))
        inst.start()
        return inst
    return make


def trust_ca(inst, ca):
    """smtp_tls_CAfile = a copy of ca inside the instance. Not the test's tmp_path: another pytest run
    on the machine may set /tmp/pytest-of-root back to 0700 at any time, and the agent (mail_owner)
    could then read nothing there."""
    path = inst.root / "trusted-ca.pem"
    shutil.copy(ca[0], path)
    os.chmod(path, 0o644)
    inst.postconf(f"smtp_tls_CAfile = {path}")


def policy_table(inst, text):
    path = inst.root / "tls_policy"
    path.write_text(text)
    os.chmod(path, 0o644)
    return f"texthash:{path}"


def assert_sent(inst, replies, peer):
    """Sent; otherwise say what the agent logged and what the peer presented, to tell a setup fault."""
    if replies[0]["status"] != "sent":
        cert = peer.starttls[0] if peer.starttls else None
        seen = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-issuer",
                               "-fingerprint", "-sha256"], capture_output=True, text=True,
                              timeout=OPENSSL_TIMEOUT).stdout if cert else "no STARTTLS"
        pytest.fail(f"not sent: {replies}\npeer port {peer.port}, certificate: {seen}\n"
                    f"peer sessions: {[(x.peer, x.tls, x.commands[:3]) for x in peer.sessions]}\n"
                    f"maillog:\n{inst.logtext()}")


def assert_not_sent(inst, qid, replies, peer, reason_start):
    assert replies[0]["status"] == "deferred", replies
    assert replies[0]["dsn"] == "4.7.5", replies
    assert replies[0]["reason"].startswith(reason_start), replies
    assert peer.messages() == []
    assert not any(c.upper().startswith("MAIL") for s in peer.sessions for c in s.commands)
    inst.wait_log(rf"{qid}: to=<bob@example\.net>, .*status=deferred \({re.escape(reason_start)}")


# ---- secure: smtp_tls_secure_cert_match = nexthop, dot-nexthop ----

def test_secure_delivers_to_a_certificate_naming_the_nexthop(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "localhost")
    inst = tls_instance("smtp_tls_security_level = secure\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    assert peer.sessions[0].tls and len(peer.messages()) == 1
    inst.wait_log(rf"Verified TLS connection established to localhost\[127\.0\.0\.1\]:{peer.port}: "
                  r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)")


def test_secure_delivers_to_a_subdomain_of_the_nexthop(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "mx1.localhost")
    inst = tls_instance("smtp_tls_security_level = secure\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)


def test_secure_defers_a_certificate_for_another_name(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "mail.other.example")
    inst = tls_instance("smtp_tls_security_level = secure\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_not_sent(inst, qid, replies, peer, "Server certificate not verified")
    assert "names none of localhost, .localhost (secure level)" in replies[0]["reason"], replies


def test_secure_explicit_match_names(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "mail.other.example")
    inst = tls_instance("smtp_tls_security_level = secure\n"
                        "smtp_tls_secure_cert_match = nexthop, .other.example\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)


# ---- verify: smtp_tls_verify_cert_match = hostname; the chain must reach smtp_tls_CAfile ----

def test_verify_matches_the_host_name_not_its_subdomains(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "mx1.localhost")
    inst = tls_instance("smtp_tls_security_level = verify\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_not_sent(inst, qid, replies, peer, "Server certificate not verified")
    assert "names none of localhost (verify level)" in replies[0]["reason"], replies


def test_verify_defers_a_certificate_from_an_untrusted_ca(tls_instance, peer, certs):
    other_ca = make_ca(certs, "untrusted")
    peer.starttls = make_leaf(certs, other_ca, "localhost")
    inst = tls_instance("smtp_tls_security_level = verify\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_not_sent(inst, qid, replies, peer, "Server certificate not trusted")
    assert "localhost[127.0.0.1]: unable to get local issuer certificate" in replies[0]["reason"], replies


def test_encrypt_goes_on_with_an_untrusted_certificate(tls_instance, peer, certs):
    other_ca = make_ca(certs, "untrusted")
    peer.starttls = make_leaf(certs, other_ca, "mail.other.example")
    inst = tls_instance("smtp_tls_security_level = encrypt\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"Untrusted TLS connection established to localhost\[127\.0\.0\.1\]:{peer.port}: ")


def test_unknown_level_defers_instead_of_guessing(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "localhost")
    inst = tls_instance("smtp_tls_security_level = secur\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred", replies
    assert "smtp_tls_security_level = secur: unknown TLS security level" in replies[0]["reason"], replies
    assert peer.sessions == []


# ---- fingerprint: the certificate's or its public key's digest, no CA needed ----

def fingerprint(cert, pubkey=False):
    """SHA-256 of the certificate (or of its public key) as "AB:CD:...", computed with openssl."""
    if not pubkey:
        out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                             check=True, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT).stdout
        return out.strip().split("=", 1)[1]
    der = subprocess.run(f"openssl x509 -in {cert} -noout -pubkey | openssl pkey -pubin -outform DER",
                         shell=True, check=True, capture_output=True, timeout=OPENSSL_TIMEOUT).stdout
    import hashlib
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_fingerprint_of_the_certificate_delivers(tls_instance, peer, certs):
    other_ca = make_ca(certs, "untrusted")
    peer.starttls = make_leaf(certs, other_ca, "mail.other.example")
    fp = fingerprint(peer.starttls[0]).lower()  # any case, as openssl or an operator writes it
    inst = tls_instance(f"smtp_tls_security_level = fingerprint\nsmtp_tls_fingerprint_cert_match = {fp}\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"Verified TLS connection established to localhost\[127\.0\.0\.1\]:{peer.port}: ")


def test_fingerprint_of_the_public_key_in_a_policy_entry(tls_instance, peer, certs):
    other_ca = make_ca(certs, "untrusted")
    peer.starttls = make_leaf(certs, other_ca, "mail.other.example")
    wrong = "AB:" * 31 + "AB"
    inst = tls_instance("smtp_tls_security_level = may\n",
                        policy=f"[localhost]:{peer.port} fingerprint match={wrong}|{fingerprint(peer.starttls[0], True)}\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)


def test_fingerprint_mismatch_defers(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "localhost")  # trusted and named: only the fingerprint counts
    other = make_leaf(certs, ca, "other.localhost")
    inst = tls_instance(f"smtp_tls_security_level = fingerprint\n"
                        f"smtp_tls_fingerprint_cert_match = {fingerprint(other[0])}, {fingerprint(other[0], True)}\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_not_sent(inst, qid, replies, peer, "Server certificate not verified")
    assert "matches none of the 2 sha256 fingerprints (fingerprint level)" in replies[0]["reason"], replies


# ---- smtp_tls_policy_maps ----

def test_policy_map_raises_the_level(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "mail.other.example")
    inst = tls_instance("smtp_tls_security_level = may\n", policy=f"[localhost]:{peer.port} secure\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_not_sent(inst, qid, replies, peer, "Server certificate not verified")


def test_policy_map_raises_none_to_encrypt(tls_instance, peer):
    inst = tls_instance("smtp_tls_security_level = none\n", policy=f"[localhost]:{peer.port} encrypt\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred", replies
    assert replies[0]["reason"] == "TLS is required, but was not offered by host localhost[127.0.0.1]"
    assert peer.messages() == []


def test_policy_map_lowers_the_level(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "mail.other.example")
    inst = tls_instance("smtp_tls_security_level = secure\n", policy=f"[elsewhere.example]:25 secure\n[localhost]:{peer.port} may\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    assert peer.sessions[0].tls


def test_policy_map_match_attribute(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "mail.other.example")
    inst = tls_instance("smtp_tls_security_level = may\n", policy=f"[localhost]:{peer.port} secure match=nexthop:.other.example\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"Verified TLS connection established to localhost\[127\.0\.0\.1\]:{peer.port}: ")


def test_policy_map_protocols_attribute(tls_instance, peer, certs, ca):
    import ssl
    peer.starttls = make_leaf(certs, ca, "localhost")
    peer.tls_maximum = ssl.TLSVersion.TLSv1_2
    inst = tls_instance("smtp_tls_security_level = may\n", policy=f"[localhost]:{peer.port} encrypt protocols=>=TLSv1.3\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred", replies
    assert replies[0]["reason"].startswith("TLS handshake with localhost[127.0.0.1] failed"), replies
    assert peer.messages() == []


@pytest.mark.parametrize("entry,cause", [
    ("secure tafile=/etc/ta.pem", 'unknown attribute "tafile"'),
    ("encrypt match=nexthop", "match= applies to the verify, secure and fingerprint levels"),
    ("fingerprint", "smtp_tls_fingerprint_cert_match is empty"),
    ("fingerprint match=AB:CD:XY", '"AB:CD:XY" is not a fingerprint'),
    # without smtp_dns_support_level = dnssec there are no validated TLSA records (test_smtp_dane.py has DANE)
    ("dane-only", "dane-only needs smtp_dns_support_level = dnssec"),
])
def test_policy_map_entry_postd_cannot_honour_defers(tls_instance, peer, certs, ca, entry, cause):
    peer.starttls = make_leaf(certs, ca, "localhost")
    inst = tls_instance("smtp_tls_security_level = may\n", policy=f"[localhost]:{peer.port} {entry}\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred", replies
    assert cause.format(port=peer.port) in replies[0]["reason"], replies
    assert peer.sessions == []


def test_policy_dane_without_dnssec_is_may(tls_instance, peer, certs):
    other_ca = make_ca(certs, "untrusted")
    peer.starttls = make_leaf(certs, other_ca, "localhost")
    inst = tls_instance("smtp_tls_security_level = none\n", policy=f"[localhost]:{peer.port} dane\n")
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    assert peer.sessions[0].tls
    inst.wait_log(r"TLS level dane: smtp_dns_support_level is not dnssec: no DNSSEC-validated lookups; using may")


# ---- TLS session resumption (in-process cache of each smtp process) ----

def deliver_twice(inst, peer):
    for n in range(2):
        qid, replies = deliver(inst, f"[localhost]:{peer.port}", f"rcpt{n}@example.net")
        assert_sent(inst, replies, peer)
    assert len(peer.sessions) == 2, "expected a new connection per delivery"
    return peer.sessions


def test_second_delivery_resumes_the_tls_session(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "localhost")
    inst = tls_instance("smtp_tls_security_level = secure\nsmtp_connection_cache_on_demand = no\n")
    first, second = deliver_twice(inst, peer)
    assert not first.tls_resumed
    assert second.tls_resumed, inst.logtext()
    inst.wait_log(rf"localhost\[127\.0\.0\.1\]:{peer.port}: Reusing old session")
    # A resumed session is still checked: the log says Verified for both connections.
    inst.wait_log(r"(?s)Verified TLS connection established.*Verified TLS connection established")


def test_session_cache_timeout_zero_disables_resumption(tls_instance, peer, certs, ca):
    peer.starttls = make_leaf(certs, ca, "localhost")
    inst = tls_instance("smtp_tls_security_level = secure\nsmtp_connection_cache_on_demand = no\n"
                        "smtp_tls_session_cache_timeout = 0\n")
    first, second = deliver_twice(inst, peer)
    assert not first.tls_resumed and not second.tls_resumed
    assert "Reusing old session" not in inst.logtext()


# ---- MX next hops against a local DNS server: hostname (the MX name) vs nexthop (the domain) ----

TLS_DNS_ADDR = "127.0.9.54"
MX_ADDR = "127.0.9.60"  # not an address of the instance: an MX there is no mail loop
TLS_RECORDS = ["--mx-host=tls.test,mx.hosting.test,10", "--host-record=mx.hosting.test," + MX_ADDR]


@pytest.fixture
def tls_dns(tmp_path):
    """dnsmasq on its own loopback address answering for *.test; yields a resolv.conf naming it."""
    import socket
    from mailinstance import wait_for
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(dnsmasq):
        pytest.fail("dnsmasq is not installed (Debian package dnsmasq-base; dev.sh installs it)")
    proc = subprocess.Popen([dnsmasq, "-k", "--port=53", f"--listen-address={TLS_DNS_ADDR}",
                             "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--group=root",
                             "--local=/test/", "--log-facility=-", *TLS_RECORDS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def answering():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(bytes.fromhex("abcd01000001000000000000") + b"\x04test\x00\x00\x01\x00\x01",
                     (TLS_DNS_ADDR, 53))
            try:
                return s.recv(512)[:2] == b"\xab\xcd"
            except OSError:
                return False

    try:
        wait_for(answering, 10, f"dnsmasq on {TLS_DNS_ADDR}", interval=0.1)
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {TLS_DNS_ADDR}\noptions timeout:2 attempts:1\n")
        yield resolv
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def mx_peer():
    p = SmtpPeer(host=MX_ADDR)
    yield p
    p.close()


@pytest.fixture
def dns_tls_instance(mail_instance, ca, tls_dns):
    from test_client_dns import start_with_dns

    def make(extra="", policy=None):
        inst = mail_instance(master_cf=SMTP_ONLY_MASTER_CF, main_extra="smtp_tls_loglevel = 1\n" + extra)
        trust_ca(inst, ca)
        if policy is not None:
            inst.postconf("smtp_tls_policy_maps = " + policy_table(inst, policy))
        start_with_dns(inst, tls_dns)
        return inst
    return make


def test_verify_trusts_the_mx_name_secure_does_not(dns_tls_instance, mx_peer, certs, ca):
    mx_peer.starttls = make_leaf(certs, ca, "mx.hosting.test")
    inst = dns_tls_instance("smtp_tls_security_level = verify\n")
    qid, replies = deliver(inst, f"tls.test:{mx_peer.port}", "bob@tls.test")
    assert_sent(inst, replies, mx_peer)
    inst.wait_log(rf"Verified TLS connection established to mx\.hosting\.test\[{re.escape(MX_ADDR)}\]")



def test_secure_does_not_trust_the_mx_name(dns_tls_instance, mx_peer, certs, ca):
    # The MX name came from (insecure) DNS: only the next-hop domain itself counts.
    mx_peer.starttls = make_leaf(certs, ca, "mx.hosting.test")
    inst = dns_tls_instance("smtp_tls_security_level = secure\n")
    qid, replies = deliver(inst, f"tls.test:{mx_peer.port}", "bob@tls.test")
    assert replies[0]["status"] == "deferred", replies
    assert replies[0]["reason"].startswith("Server certificate not verified: the certificate of "
                                           f"mx.hosting.test[{MX_ADDR}] names none of tls.test, .tls.test"), replies
    assert mx_peer.messages() == []


def test_policy_lookup_domain_then_parent(dns_tls_instance, mx_peer, certs, ca):
    mx_peer.starttls = make_leaf(certs, ca, "mx.hosting.test")
    # Only ".test" matches tls.test: secure applies, and the MX name does not satisfy it.
    inst = dns_tls_instance("smtp_tls_security_level = may\n", policy=".test secure\nother.test may\n")
    qid, replies = deliver(inst, f"tls.test:{mx_peer.port}", "bob@tls.test")
    assert replies[0]["status"] == "deferred", replies
    assert replies[0]["reason"].startswith("Server certificate not verified"), (replies, inst.logtext())
    assert mx_peer.messages() == []


def test_policy_lookup_domain_before_parent(dns_tls_instance, mx_peer, certs, ca):
    mx_peer.starttls = make_leaf(certs, ca, "mx.hosting.test")
    inst = dns_tls_instance("smtp_tls_security_level = may\n", policy=".test secure\ntls.test verify\n")
    qid, replies = deliver(inst, f"tls.test:{mx_peer.port}", "bob@tls.test")
    assert_sent(inst, replies, mx_peer)
    inst.wait_log(rf"Verified TLS connection established to mx\.hosting\.test\[{re.escape(MX_ADDR)}\]")
