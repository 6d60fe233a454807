"""test_smtp_dane.py: DANE in the smtp client (smtp_tls_security_level = dane / dane-only, RFC 7672)
against a real validating resolver.

Each test signs its zones here (ldns-keygen, ldns-signzone) and starts unbound on an address of its
own (127.53.x.y, picked free at random: another run of these tests may be going on) serving them (auth-zone, validated as if they came from upstream) with the zones' own keys as trust anchors,
so answers carry the AD bit. The instance runs in a mount namespace whose resolv.conf names that
resolver with "options trust-ad". The MX hosts point at an SMTP peer (smtp_peer.SmtpPeer, Python's
ssl) on 127.0.10.25 whose certificate comes from a test CA; TLSA records are computed from those
certificates with openssl. Nothing leaves 127.0.0.0/8.
"""
import base64
import hashlib
import os
import random
import re
import shutil
import socket
import subprocess

import pytest

from mailinstance import wait_for
from smtp_peer import SmtpPeer
from test_client_dns import start_with_dns
from test_smtp_client import SMTP_ONLY_MASTER_CF, deliver
from test_smtp_tls_verify import OPENSSL_TIMEOUT, make_ca, make_leaf

PEER_ADDR = "127.0.10.25"
TOOL_TIMEOUT = 30


def tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not path:
        pytest.fail(f"{name} is not installed (Debian packages unbound and ldnsutils; dev.sh installs them)")
    return path


def der(*cmd):
    return subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True,
                          timeout=OPENSSL_TIMEOUT).stdout


def spki_sha256(cert):
    """TLSA selector 1 matching type 1: SHA-256 of the DER SubjectPublicKeyInfo."""
    pem = der("x509", "-in", cert, "-noout", "-pubkey")
    key = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem, check=True,
                         capture_output=True, timeout=OPENSSL_TIMEOUT).stdout
    return hashlib.sha256(key).hexdigest()


def cert_sha256(cert):
    """TLSA selector 0 matching type 1: SHA-256 of the whole DER certificate."""
    return hashlib.sha256(der("x509", "-in", cert, "-outform", "DER")).hexdigest()


def write_zone(directory, origin, records, ns_addr):
    zone = directory / f"{origin}.zone"
    zone.write_text(f"$ORIGIN {origin}.\n$TTL 300\n"
                    f"@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n"
                    f"@ IN NS ns.{origin}.\nns IN A {ns_addr}\n" + "".join(r + "\n" for r in records))
    return zone


def sign_zone(directory, origin, records, ns_addr, break_rrsig_of=None):
    """Write and sign a zone; returns its DS record file (the trust anchor). break_rrsig_of names an
    owner (or (owner, type)) whose RRSIG gets a corrupted signature: a validating resolver then calls
    that data bogus."""
    zone = write_zone(directory, origin, records, ns_addr)

    def run(*cmd):
        return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=directory,
                              timeout=TOOL_TIMEOUT).stdout.strip()

    ksk = run(tool("ldns-keygen"), "-a", "ECDSAP256SHA256", "-k", origin)
    zsk = run(tool("ldns-keygen"), "-a", "ECDSAP256SHA256", origin)
    run(tool("ldns-signzone"), "-f", str(zone) + ".signed", str(zone), ksk, zsk)
    signed = directory / f"{zone.name}.signed"
    if break_rrsig_of:
        owner, rrtype = break_rrsig_of if isinstance(break_rrsig_of, tuple) else (break_rrsig_of, None)
        lines = signed.read_text().splitlines()
        broken = 0
        for i, line in enumerate(lines):
            f = line.split()
            if (f and f[0] == owner and len(f) > 5 and f[3] == "RRSIG" and f[4] != "NSEC3"
                    and rrtype in (None, f[4])):
                sig = bytearray(base64.b64decode("".join(f[12:])))
                sig[5] ^= 0xff
                lines[i] = "\t".join(f[:12] + [base64.b64encode(bytes(sig)).decode()])
                broken += 1
        assert broken, f"no RRSIG of {break_rrsig_of} in {signed}"
        signed.write_text("\n".join(lines) + "\n")
    return directory / f"{ksk}.ds", signed


def port_53_free(addr):
    """Nothing has addr:53 (UDP or TCP); sockets without SO_REUSEPORT, as unbound's will be."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind((addr, 53))
            t.bind((addr, 53))
        return True
    except OSError:
        return False


class Resolver:
    ATTEMPTS = 5

    def __init__(self, directory):
        self.dir = directory
        self.proc = None
        self.addr = None

    def start(self, zones, unsigned=None, trust_ad=True):
        """zones: {origin: (records, break_rrsig_of)} signed; unsigned: {origin: records}, served as
        insecure (no trust anchor). Returns the resolv.conf to bind-mount."""
        for _ in range(self.ATTEMPTS):
            self.addr = f"127.53.{random.randint(1, 254)}.{random.randint(1, 254)}"
            if port_53_free(self.addr) and self.try_start(zones, unsigned or {}):
                resolv = self.dir / "resolv.conf"
                resolv.write_text(f"nameserver {self.addr}\n"
                                  f"options {'trust-ad ' if trust_ad else ''}timeout:2 attempts:1\n")
                return resolv
        pytest.fail(f"unbound did not start in {self.ATTEMPTS} attempts:\n" +
                    (self.dir / "unbound.log").read_text())

    def try_start(self, zones, unsigned):
        """Start unbound on self.addr; False when it exited (the address was taken meanwhile)."""
        self.stop()
        conf = ["server:", f"  interface: {self.addr}", "  port: 53", "  so-reuseport: no", "  do-daemonize: no",
                '  username: ""', '  chroot: ""', f'  directory: "{self.dir}"', '  pidfile: ""',
                "  use-syslog: no", "  do-ip6: no", "  access-control: 127.0.0.0/8 allow",
                '  module-config: "validator iterator"', '  local-zone: "test." nodefault',
                # nothing leaves the host: every name outside the test zones is refused, never
                # looked up from the root servers
                '  local-zone: "." refuse',
                "  val-log-level: 2", "  verbosity: 1"]
        auth = []
        for origin, (records, broken) in zones.items():
            ds, signed = sign_zone(self.dir, origin, records, self.addr, broken)
            conf += [f'  trust-anchor-file: "{ds}"', f'  local-zone: "{origin}." transparent']
            auth += ["auth-zone:", f'  name: "{origin}"', f'  zonefile: "{signed}"', "  for-upstream: yes",
                     "  for-downstream: no", "  fallback-enabled: no"]
        for origin, records in unsigned.items():
            zone = write_zone(self.dir, origin, records, self.addr)
            conf += [f'  domain-insecure: "{origin}"', f'  local-zone: "{origin}." transparent']
            auth += ["auth-zone:", f'  name: "{origin}"', f'  zonefile: "{zone}"', "  for-upstream: yes",
                     "  for-downstream: no", "  fallback-enabled: no"]
        path = self.dir / "unbound.conf"
        path.write_text("\n".join(conf + auth) + "\n")
        self.log = open(self.dir / "unbound.log", "wb")
        self.proc = subprocess.Popen([tool("unbound"), "-d", "-c", str(path)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        return wait_for(self.answering, 10, f"unbound on {self.addr}", interval=0.1) == "up"

    def answering(self):
        if self.proc.poll() is not None:
            return "exited"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(bytes.fromhex("abcd01000001000000000000") + b"\x04test\x00\x00\x06\x00\x01", (self.addr, 53))
            try:
                return "up" if s.recv(512)[:2] == b"\xab\xcd" else None
            except OSError:
                return None

    def stop(self):
        if self.proc:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=10)
            self.log.close()
            self.proc = None


@pytest.fixture
def resolver(tmp_path):
    d = tmp_path / "dns"
    d.mkdir()
    os.chmod(d, 0o755)
    r = Resolver(d)
    yield r
    r.stop()


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    return d


@pytest.fixture
def ca(certs):
    return make_ca(certs, "dane")


@pytest.fixture
def peer():
    p = SmtpPeer(host=PEER_ADDR)
    yield p
    p.close()


def serve_chain(peer, certs, ca, name):
    """The peer offers STARTTLS with a leaf for name, sending the CA too (DANE-TA(2) needs it in the
    chain). Returns the leaf certificate."""
    leaf, key = make_leaf(certs, ca, name)
    chain = certs / f"chain-{name}.pem"
    chain.write_text(leaf.read_text() + ca[0].read_text())
    peer.starttls = (chain, key)
    return leaf


def dane_instance(mail_instance, resolv, level="dane", extra=""):
    inst = mail_instance(master_cf=SMTP_ONLY_MASTER_CF,
                         main_extra=f"smtp_tls_loglevel = 1\nsmtp_dns_support_level = dnssec\n"
                                    f"smtp_tls_security_level = {level}\n" + extra)
    start_with_dns(inst, resolv)
    return inst


def mx(domain, host):
    return [f"{domain}. IN MX 10 {host}.", f"{host}. IN A {PEER_ADDR}"]


def tlsa(host, port, rdata):
    return [f"_{port}._tcp.{host}. IN TLSA {rdata}"]


def assert_sent(inst, replies, peer):
    assert replies[0]["status"] == "sent", f"{replies}\nmaillog:\n{inst.logtext()}"
    assert peer.sessions and peer.sessions[-1].tls and len(peer.messages()) == 1


def assert_deferred(inst, qid, replies, peer, reason_start):
    assert replies[0]["status"] == "deferred", f"{replies}\nmaillog:\n{inst.logtext()}"
    assert replies[0]["dsn"] == "4.7.5", replies
    assert replies[0]["reason"].startswith(reason_start), replies
    assert peer.messages() == []
    assert not any(c.upper().startswith("MAIL") for s in peer.sessions for c in s.commands)
    inst.wait_log(rf"{qid}: to=<bob@example\.net>, .*status=deferred \({re.escape(reason_start)}")


def test_dane_ee_match_is_verified(mail_instance, resolver, peer, certs, ca):
    leaf = serve_chain(peer, certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, f"3 1 1 {spki_sha256(leaf)}"), None)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}: DANE TLSA 3 1 1 of "
                  rf"_{peer.port}\._tcp\.mx\.dane\.test matched the end entity certificate at depth 0")
    inst.wait_log(rf"Verified TLS connection established to mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}: "
                  r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)")


def test_dane_wrong_digest_is_deferred(mail_instance, resolver, peer, certs, ca):
    serve_chain(peer, certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, "3 1 1 " + "ab" * 32), None)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_deferred(inst, qid, replies, peer, "Server certificate not verified")
    assert "DANE, 1 TLSA record of" in replies[0]["reason"], replies
    assert peer.sessions and peer.sessions[0].tls  # the handshake was made, then nothing sent


def test_dane_bogus_tlsa_is_deferred_without_connecting(mail_instance, resolver, peer, certs, ca):
    leaf = serve_chain(peer, certs, ca, "mx.bogus.test")
    host = "mx.bogus.test"
    resolv = resolver.start({"bogus.test": (mx("bogus.test", host) +
                                            tlsa(host, peer.port, f"3 1 1 {spki_sha256(leaf)}"),
                                            f"_{peer.port}._tcp.{host}.")})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"bogus.test:{peer.port}", "bob@example.net")
    assert_deferred(inst, qid, replies, peer, f"TLSA lookup error for {host}:{peer.port}")
    assert peer.sessions == []  # nothing sent, not even in clear


def test_dane_without_tlsa_is_opportunistic(mail_instance, resolver, peer, certs, ca):
    serve_chain(peer, certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test"), None)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}: no TLSA records "
                  rf"\(_{peer.port}\._tcp\.mx\.dane\.test\): TLS level may")
    inst.wait_log(rf"Untrusted TLS connection established to mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}")


def test_dane_only_without_tlsa_is_deferred(mail_instance, resolver, peer, certs, ca):
    serve_chain(peer, certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test"), None)})
    inst = dane_instance(mail_instance, resolv, level="dane-only")
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_deferred(inst, qid, replies, peer, "TLS level dane-only for mx.dane.test")
    assert "no TLSA records" in replies[0]["reason"], replies
    assert peer.sessions == []


def test_dane_ta_usage_2_via_the_ca(mail_instance, resolver, peer, certs, ca):
    serve_chain(peer, certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, f"2 0 1 {cert_sha256(ca[0])}"),
                                           None)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"DANE TLSA 2 0 1 of _{peer.port}\._tcp\.mx\.dane\.test matched the trust anchor at depth 1")
    inst.wait_log(rf"Verified TLS connection established to mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}")


def test_dane_ta_checks_the_host_name(mail_instance, resolver, peer, certs, ca):
    # The CA matches, but the certificate names another host: DANE-TA(2) checks names (RFC 7672 3.2.2).
    serve_chain(peer, certs, ca, "mail.other.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, f"2 0 1 {cert_sha256(ca[0])}"),
                                           None)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_deferred(inst, qid, replies, peer, "Server certificate not verified")


def test_policy_map_dane_only_entry(mail_instance, resolver, peer, certs, ca):
    # main.cf says may; the policy table asks dane-only for this destination: its TLSA records rule.
    leaf = serve_chain(peer, certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, f"3 1 1 {spki_sha256(leaf)}"), None)})
    inst = mail_instance(master_cf=SMTP_ONLY_MASTER_CF,
                         main_extra="smtp_tls_loglevel = 1\nsmtp_dns_support_level = dnssec\n"
                                    "smtp_tls_security_level = may\n")
    table = inst.root / "tls_policy"
    table.write_text("dane.test dane-only\n")
    os.chmod(table, 0o644)
    inst.postconf(f"smtp_tls_policy_maps = texthash:{table}")
    start_with_dns(inst, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"Verified TLS connection established to mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}")


def test_unsigned_zone_tlsa_records_are_ignored(mail_instance, resolver, peer, certs, ca):
    # RFC 7672 2.2: TLSA records from an unsigned zone mean nothing (this one would not even match).
    serve_chain(peer, certs, ca, "mx.plain.test")
    resolv = resolver.start({}, unsigned={"plain.test": mx("plain.test", "mx.plain.test") +
                                          tlsa("mx.plain.test", peer.port, "3 1 1 " + "ab" * 32)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"plain.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"mx\.plain\.test\[127\.0\.10\.25\]:{peer.port}: TLS level dane: the host's address "
                  r"records are not DNSSEC-validated; using may")
    inst.wait_log(rf"Untrusted TLS connection established to mx\.plain\.test\[127\.0\.10\.25\]:{peer.port}")


def test_dane_only_unsigned_zone_is_deferred(mail_instance, resolver, peer, certs, ca):
    serve_chain(peer, certs, ca, "mx.plain.test")
    resolv = resolver.start({}, unsigned={"plain.test": mx("plain.test", "mx.plain.test")})
    inst = dane_instance(mail_instance, resolv, level="dane-only")
    qid, replies = deliver(inst, f"plain.test:{peer.port}", "bob@example.net")
    assert_deferred(inst, qid, replies, peer, "TLS level dane-only for mx.plain.test")
    assert peer.sessions == []


def insecure_mx_zones(peer, leaf):
    """An unsigned domain whose MX host lives in a signed zone with a matching TLSA record."""
    return ({"dane.test": ([f"mx.dane.test. IN A {PEER_ADDR}"] +
                           tlsa("mx.dane.test", peer.port, f"3 1 1 {spki_sha256(leaf)}"), None)},
            {"plain.test": ["plain.test. IN MX 10 mx.dane.test."]})


def test_insecure_mx_uses_the_hosts_tlsa_by_default(mail_instance, resolver, peer, certs, ca):
    # smtp_tls_dane_insecure_mx_policy is empty: dane, since the main.cf level is dane (Postfix >= 3.6).
    leaf = serve_chain(peer, certs, ca, "mx.dane.test")
    signed, unsigned = insecure_mx_zones(peer, leaf)
    inst = dane_instance(mail_instance, resolver.start(signed, unsigned=unsigned))
    qid, replies = deliver(inst, f"plain.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"Verified TLS connection established to mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}")


def test_insecure_mx_policy_may(mail_instance, resolver, peer, certs, ca):
    leaf = serve_chain(peer, certs, ca, "mx.dane.test")
    signed, unsigned = insecure_mx_zones(peer, leaf)
    inst = dane_instance(mail_instance, resolver.start(signed, unsigned=unsigned),
                         extra="smtp_tls_dane_insecure_mx_policy = may\n")
    qid, replies = deliver(inst, f"plain.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}: MX record not DNSSEC-validated: TLS "
                  r"level may \(smtp_tls_dane_insecure_mx_policy\)")
    inst.wait_log(rf"Untrusted TLS connection established to mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}")


def test_unusable_tlsa_records_mean_encrypt(mail_instance, resolver, peer, certs, ca):
    # PKIX-EE(1) is unusable for SMTP (RFC 7672 3.1.3): TLS is still required, so a server that does
    # not offer STARTTLS gets nothing.
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, "1 1 1 " + "ab" * 32), None)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred" and replies[0]["dsn"] == "4.7.4", replies
    assert replies[0]["reason"].startswith("TLS is required, but was not offered"), replies
    assert peer.messages() == []
    inst.wait_log(rf"the 1 TLSA records of _{peer.port}\._tcp\.mx\.dane\.test are all unusable: TLS level "
                  r"encrypt")


def test_resolv_conf_without_trust_ad_is_named(mail_instance, resolver, peer, certs, ca):
    # glibc drops the AD bit without "options trust-ad": nothing validates, and the log says why.
    leaf = serve_chain(peer, certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, f"3 1 1 {spki_sha256(leaf)}"), None)},
                            trust_ad=False)
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(r"warning: smtp_dns_support_level = dnssec, but /etc/resolv\.conf has no \"options trust-ad\"")
    inst.wait_log(rf"Untrusted TLS connection established to mx\.dane\.test\[127\.0\.10\.25\]:{peer.port}")


def test_dane_server_without_starttls_is_deferred(mail_instance, resolver, peer, certs, ca):
    # Usable TLSA records make TLS mandatory: a server that does not offer STARTTLS (an attacker
    # stripping it, say) gets nothing in clear.
    leaf, _ = make_leaf(certs, ca, "mx.dane.test")
    resolv = resolver.start({"dane.test": (mx("dane.test", "mx.dane.test") +
                                           tlsa("mx.dane.test", peer.port, f"3 1 1 {spki_sha256(leaf)}"), None)})
    inst = dane_instance(mail_instance, resolv)
    qid, replies = deliver(inst, f"dane.test:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred" and replies[0]["dsn"] == "4.7.4", replies
    assert replies[0]["reason"].startswith("TLS is required, but was not offered"), replies
    assert peer.messages() == []


def test_dane_bracketed_nexthop_uses_the_hosts_tlsa(mail_instance, resolver, peer, certs, ca):
    # [host]:port: no MX lookup; the host's own validated address and TLSA records decide.
    leaf = serve_chain(peer, certs, ca, "relay.dane.test")
    resolv = resolver.start({"dane.test": ([f"relay.dane.test. IN A {PEER_ADDR}"] +
                                           tlsa("relay.dane.test", peer.port, f"3 1 1 {spki_sha256(leaf)}"),
                                           None)})
    inst = dane_instance(mail_instance, resolv, level="dane-only")
    qid, replies = deliver(inst, f"[relay.dane.test]:{peer.port}", "bob@example.net")
    assert_sent(inst, replies, peer)
    inst.wait_log(rf"Verified TLS connection established to relay\.dane\.test\[127\.0\.10\.25\]:{peer.port}")


def test_dane_bogus_address_records_are_deferred(mail_instance, resolver, peer, certs, ca):
    # The host's AAAA answer is bogus (SERVFAIL) while its A record is fine: taking that for
    # "insecure" would let an attacker who breaks one signature turn DANE into may.
    leaf = serve_chain(peer, certs, ca, "mx.bogus.test")
    host = "mx.bogus.test"
    resolv = resolver.start({"bogus.test": (mx("bogus.test", host) + [f"{host}. IN AAAA 2001:db8::25"] +
                                            tlsa(host, peer.port, f"3 1 1 {spki_sha256(leaf)}"),
                                            (f"{host}.", "AAAA"))})
    inst = dane_instance(mail_instance, resolv, extra="inet_protocols = all\n")
    qid, replies = deliver(inst, f"bogus.test:{peer.port}", "bob@example.net")
    assert_deferred(inst, qid, replies, peer, f"address lookup error for {host}")
    assert peer.sessions == []


def test_insecure_mx_policy_not_understood_defers(mail_instance, resolver, peer, certs, ca):
    leaf = serve_chain(peer, certs, ca, "mx.dane.test")
    signed, unsigned = insecure_mx_zones(peer, leaf)
    inst = dane_instance(mail_instance, resolver.start(signed, unsigned=unsigned),
                         extra="smtp_tls_dane_insecure_mx_policy = sometimes\n")
    qid, replies = deliver(inst, f"plain.test:{peer.port}", "bob@example.net")
    assert_deferred(inst, qid, replies, peer,
                    "smtp_tls_dane_insecure_mx_policy = sometimes: unknown policy (use may, dane or encrypt)")
    assert peer.sessions == []
