"""test_client_dns.py: smtpd's client names and DNS-based client restrictions, against a real DNS
server (dnsmasq) that the test starts on a loopback address of its own.

The instance runs in a mount namespace whose resolv.conf names that server, so nothing leaves the
machine. Clients connect from loopback source addresses that /etc/hosts does not name:
127.0.9.2 has a PTR that points back (good.client.test), 127.0.9.3 a PTR to a name whose address is
another one (forged.client.test), 127.0.9.4 no PTR at all; 127.0.9.5 is listed in bl.test.
"""
import os
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import BIN
import mailinstance
from mailinstance import wait_for

DNS_ADDR = "127.0.9.53"
RECORDS = [
    "--ptr-record=2.9.0.127.in-addr.arpa,good.client.test", "--host-record=good.client.test,127.0.9.2",
    "--ptr-record=3.9.0.127.in-addr.arpa,forged.client.test", "--host-record=forged.client.test,127.0.9.99",
    "--host-record=5.9.0.127.bl.test,127.0.0.2", "--txt-record=5.9.0.127.bl.test,listed for testing",
    # domains for the sender, recipient and HELO checks: ok.test has an address, mx.test only an MX
    "--host-record=ok.test,127.0.9.10", "--mx-host=mx.test,ok.test,10",
    "--host-record=spam.test.dbl.test,127.0.1.2", "--txt-record=spam.test.dbl.test,spammy domain",
]


@pytest.fixture
def dns_server(tmp_path):
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(dnsmasq):
        pytest.fail("dnsmasq is not installed (Debian package dnsmasq-base; dev.sh installs it)")
    proc = subprocess.Popen([dnsmasq, "-k", "--port=53", f"--listen-address={DNS_ADDR}", "--bind-interfaces",
                             "--no-resolv", "--no-hosts", "--user=root", "--group=root",
                             "--local=/127.in-addr.arpa/", "--local=/test/", "--log-facility=-", *RECORDS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def answering():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            # a minimal query for "test" type A: any answer means the server is up
            s.sendto(bytes.fromhex("abcd01000001000000000000") + b"\x04test\x00\x00\x01\x00\x01", (DNS_ADDR, 53))
            try:
                return s.recv(512)[:2] == b"\xab\xcd"
            except OSError:
                return False

    try:
        wait_for(answering, 10, f"dnsmasq on {DNS_ADDR}", interval=0.1)
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {DNS_ADDR}\noptions timeout:2 attempts:1\n")
        yield resolv
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_with_dns(inst, resolv):
    script = (f"mount --make-rprivate / && mount --bind {resolv} /etc/resolv.conf && "
              f"exec {BIN}/postfix -c {inst.etc} start")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, **inst.env), timeout=60)
    assert r.returncode == 0, r.stderr + inst.logtext()


def instance(mail_instance, resolv, extra=""):
    inst = mail_instance(main_extra="mynetworks = 127.0.0.1/32\nsmtpd_peername_lookup = yes\n" + extra)
    start_with_dns(inst, resolv)
    return inst


def rcpt_reply(inst, source):
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=20, source_address=(source, 0)) as c:
        c.ehlo("client.example")
        c.docmd("MAIL FROM:<a@example.org>")
        return c.docmd("RCPT TO:<postd-test@localhost>")


def test_client_name_is_forward_confirmed(mail_instance, dns_server):
    inst = instance(mail_instance, dns_server)
    for source in ("127.0.9.2", "127.0.9.3", "127.0.9.4"):
        assert rcpt_reply(inst, source)[0] == 250
    inst.wait_log(r"smtpd\[\d+\]: connect from good\.client\.test\[127\.0\.9\.2\]")
    # A PTR name whose address is another one is no name at all, as with Postfix.
    inst.wait_log(r"smtpd\[\d+\]: connect from unknown\[127\.0\.9\.3\]")
    inst.wait_log(r"smtpd\[\d+\]: connect from unknown\[127\.0\.9\.4\]")
    inst.wait_log(r"[0-9A-F]+: client=good\.client\.test\[127\.0\.9\.2\]")


def test_peername_lookup_off(mail_instance, dns_server):
    inst = instance(mail_instance, dns_server, "smtpd_peername_lookup = no\n")
    assert rcpt_reply(inst, "127.0.9.2")[0] == 250
    inst.wait_log(r"smtpd\[\d+\]: connect from unknown\[127\.0\.9\.2\]")


def test_reject_unknown_client_hostname(mail_instance, dns_server):
    inst = instance(mail_instance, dns_server,
                    "smtpd_client_restrictions = reject_unknown_client_hostname\n")
    assert rcpt_reply(inst, "127.0.9.2")[0] == 250
    assert rcpt_reply(inst, "127.0.9.3") == (
        450, b"4.7.25 Client host rejected: cannot find your hostname, [127.0.9.3]")
    assert rcpt_reply(inst, "127.0.9.4") == (
        450, b"4.7.25 Client host rejected: cannot find your hostname, [127.0.9.4]")
    inst.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.9\.3\]: 450 4\.7\.25 Client host rejected: "
                  r"cannot find your hostname, \[127\.0\.9\.3\];")


def test_reject_unknown_reverse_client_hostname(mail_instance, dns_server):
    inst = instance(mail_instance, dns_server,
                    "smtpd_client_restrictions = reject_unknown_reverse_client_hostname\n"
                    "unknown_client_reject_code = 550\n")
    assert rcpt_reply(inst, "127.0.9.3")[0] == 250  # a PTR record, even an unconfirmed one
    assert rcpt_reply(inst, "127.0.9.4") == (
        550, b"5.7.25 Client host rejected: cannot find your reverse hostname, [127.0.9.4]")


def test_reject_rbl_client(mail_instance, dns_server):
    inst = instance(mail_instance, dns_server, "smtpd_client_restrictions = reject_rbl_client bl.test\n")
    assert rcpt_reply(inst, "127.0.9.2")[0] == 250
    assert rcpt_reply(inst, "127.0.9.5") == (
        554, b"5.7.1 Service unavailable; Client host [127.0.9.5] blocked using bl.test; listed for testing")


def test_greeting_waits_for_the_lookup_without_blocking_others(mail_instance, dns_server):
    """Sessions keep being served while lookups run in worker threads: ten at once all get greeted."""
    inst = instance(mail_instance, dns_server)
    socks = [socket.create_connection(("127.0.0.1", inst.port), timeout=20, source_address=("127.0.9.4", 0))
             for _ in range(10)]
    try:
        deadline = time.monotonic() + 20
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            assert s.recv(512).startswith(b"220 ")
    finally:
        for s in socks:
            s.close()


def test_wrappermode_client_waits_for_the_lookup(mail_instance, dns_server, tmp_path):
    """A TLS-wrapped client speaks first: its ClientHello must wait, unread, until the lookup ends."""
    from test_smtpd import client_ctx, make_cert
    cert, key = make_cert(tmp_path / "tls")
    inst = mail_instance(
        master_cf=mailinstance.DEFAULT_MASTER_CF.replace(
            "{port}    inet  n       -       n       -       -       smtpd\n",
            "{port}    inet  n       -       n       -       -       smtpd -o smtpd_tls_wrappermode=yes\n"),
        main_extra=f"smtpd_peername_lookup = yes\nsmtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n")
    start_with_dns(inst, dns_server)
    with smtplib.SMTP_SSL("127.0.0.1", inst.port, timeout=20, context=client_ctx(),
                          source_address=("127.0.9.2", 0)) as c:
        assert c.ehlo("x")[0] == 250
    inst.wait_log(r"connect from good\.client\.test\[127\.0\.9\.2\]")
    inst.wait_log(r"Anonymous TLS connection established from good\.client\.test\[127\.0\.9\.2\]")


def transaction(inst, helo, sender, rcpt, source="127.0.0.1"):
    """The replies to HELO, MAIL and RCPT (a rejected step ends the list)."""
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=20, source_address=(source, 0)) as c:
        replies = [c.docmd("EHLO", helo), c.docmd(f"MAIL FROM:<{sender}>"), c.docmd(f"RCPT TO:<{rcpt}>")]
    return [(code, text.decode().split("\n")[0]) for code, text in replies]


def test_reject_unknown_sender_and_recipient_domain(mail_instance, dns_server):
    inst = instance(mail_instance, dns_server,
                    "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
                    "smtpd_relay_restrictions = reject_unknown_recipient_domain, permit_mynetworks, "
                    "reject_unauth_destination\n")
    assert transaction(inst, "c.example", "a@ok.test", "b@mx.test")[2][0] == 250
    assert transaction(inst, "c.example", "a@gone.test", "postd-test@localhost")[2] == (
        450, "4.1.8 <a@gone.test>: Sender address rejected: Domain not found")
    assert transaction(inst, "c.example", "a@ok.test", "b@gone.test")[2] == (
        450, "4.1.2 <b@gone.test>: Recipient address rejected: Domain not found")
    # Our own domain is never looked up: mx.example.test exists in no DNS here.
    assert transaction(inst, "c.example", "a@ok.test", "postd-test@mx.example.test")[2][0] == 250
    inst.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 450 4\.1\.8 <a@gone\.test>: "
                  r"Sender address rejected: Domain not found; from=<a@gone\.test>")


def test_reject_unknown_helo_hostname_without_delay_reject(mail_instance, dns_server):
    """smtpd_delay_reject = no: the lookup happens at EHLO, which is then answered with the verdict."""
    inst = instance(mail_instance, dns_server,
                    "smtpd_delay_reject = no\nsmtpd_helo_required = yes\n"
                    "smtpd_helo_restrictions = reject_unknown_helo_hostname\n")
    assert transaction(inst, "ok.test", "a@example.org", "postd-test@localhost")[0][0] == 250
    replies = transaction(inst, "nohost.test", "a@example.org", "postd-test@localhost")
    assert replies[0] == (450, "4.7.1 <nohost.test>: Helo command rejected: Host not found")
    inst.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=0/1 mail=0/1 rcpt=0/1")


def test_reject_rhsbl_sender(mail_instance, dns_server):
    inst = instance(mail_instance, dns_server, "smtpd_sender_restrictions = reject_rhsbl_sender dbl.test\n")
    assert transaction(inst, "c.example", "a@ok.test", "postd-test@localhost")[2][0] == 250
    assert transaction(inst, "c.example", "a@spam.test", "postd-test@localhost")[2] == (
        554, "5.7.1 Service unavailable; Sender address [spam.test] blocked using dbl.test; spammy domain")


@pytest.fixture
def silent_dns(tmp_path):
    """A DNS server that reads queries and never answers: lookups wait for the resolver's timeout."""
    addr = "127.0.9.54"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, 53))
    resolv = tmp_path / "resolv-silent.conf"
    resolv.write_text(f"nameserver {addr}\noptions timeout:3 attempts:1\n")
    yield resolv
    sock.close()


def test_reload_while_a_client_waits_for_its_greeting(mail_instance, silent_dns):
    """postfix reload stops the old smtpd while a new client's name lookup runs: the client still gets
    its greeting (not a 421), as a transaction in progress would be finished."""
    inst = instance(mail_instance, silent_dns)
    with socket.create_connection(("127.0.0.1", inst.port), timeout=20, source_address=("127.0.9.7", 0)) as c:
        # The lookup of 127.0.9.7 waits on the silent server; reload meanwhile.
        time.sleep(0.5)
        r = inst.postfix("reload")
        assert r.returncode == 0, r.stderr
        c.settimeout(20)
        assert c.recv(512).startswith(b"220 ")
    inst.wait_log(r"connect from unknown\[127\.0\.9\.7\]")
