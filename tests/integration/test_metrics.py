"""test_metrics.py: native per-instance metrics: the counters the roles keep, `postfix metrics`, and the
metrics service scraped over HTTP during a load, each parsed with prometheus_client's OpenMetrics parser."""
import smtplib
import socket
import threading
import urllib.request

import pytest

from conftest import require
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, free_port, wait_for
from smtp_peer import SmtpPeer

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:  # the README's test command installs python3-prometheus-client
    text_string_to_metric_families = None


def parse(text):
    """{(family, sample name, frozenset(labels)): value}; the parser rejects anything not OpenMetrics."""
    require(text_string_to_metric_families, "python3-prometheus-client (apt-get install python3-prometheus-client)")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(fam.name, s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    want = frozenset(labels.items())
    found = [v for (_, n, ls), v in samples.items() if n == name and want <= ls]
    assert found, f"no {name} {labels} in {sorted(k[1] for k in samples)}"
    return sum(found)


@pytest.fixture
def peer():
    p = SmtpPeer()
    yield p
    p.close()


def start(mail_instance, peer):
    mport = free_port()
    master_cf = DEFAULT_MASTER_CF + ("smtp      unix  -       -       n       -       -       smtp\n"
                                     f"127.0.0.1:{mport} inet n - n - - metrics\n")
    inst = mail_instance(name="postfix-dept1", master_cf=master_cf,
                         main_extra=f"relayhost = [127.0.0.1]:{peer.port}\nmynetworks = 127.0.0.1/32\n"
                                    "multi_instance_name = postfix-dept1\n")
    inst.start()
    return inst, mport


def send(inst, rcpt, n=1):
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        for i in range(n):
            s.sendmail("alice@example.org", [rcpt], f"Subject: metrics {i}\r\n\r\nbody\r\n")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        return r.read().decode()


def test_counters_follow_the_mail(mail_instance, peer):
    inst, mport = start(mail_instance, peer)
    send(inst, "someone@remote.example", 3)
    send(inst, f"{TEST_USER}@mx.example.test", 2)
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.ehlo("client.example")
        s.mail("alice@example.org")
        assert s.rcpt("nosuchuser@mx.example.test")[0] == 550  # counted as a reject
    wait_for(lambda: len(peer.messages()) == 3 and inst.mbox(TEST_USER).count(b"Subject: metrics") == 2, 60,
             "the five deliveries")
    r = inst.cmd("postfix", "metrics")
    assert r.returncode == 0, r.stderr
    m = parse(r.stdout)
    assert value(m, "postd_messages_received_total", instance="postfix-dept1", origin="smtpd") == 5
    assert value(m, "postd_deliveries_total", transport="smtp", status="sent") == 3
    assert value(m, "postd_deliveries_total", transport="local", status="sent") == 2
    assert value(m, "postd_delivery_delay_seconds_count", transport="smtp") == 3
    assert value(m, "postd_smtpd_connections_total") == 3
    assert value(m, "postd_smtpd_rejects_total") == 1
    assert value(m, "postd_queue_messages", queue="active") == 0
    # The service gives the same counters over HTTP.
    h = parse(scrape(mport))
    assert value(h, "postd_deliveries_total", transport="local", status="sent") == 2


def test_scraped_during_a_load(mail_instance, peer):
    """Scrapes while 4 clients send 60 messages: every text parses, counters never go back, and the last
    scrape counts every message received and delivered."""
    inst, mport = start(mail_instance, peer)
    errors = []

    def client(k):
        try:
            send(inst, f"load{k}@remote.example", 15)
        except (OSError, smtplib.SMTPException) as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    seen = []
    for _ in range(200):  # bounded: at most 200 scrapes
        seen.append(value(parse(scrape(mport)), "postd_messages_received_total", origin="smtpd"))
        if not any(t.is_alive() for t in threads) and len(peer.messages()) >= 60:
            break
    for t in threads:
        t.join(60)
    assert not errors, errors
    wait_for(lambda: len(peer.messages()) == 60, 60, "60 deliveries")
    assert seen == sorted(seen), f"a counter went back: {seen}"
    final = parse(scrape(mport))
    assert value(final, "postd_messages_received_total", origin="smtpd") == 60
    wait_for(lambda: value(parse(scrape(mport)), "postd_deliveries_total", transport="smtp", status="sent") == 60,
             30, "60 sent deliveries counted")
    assert value(final, "postd_smtpd_sessions") >= 0


def test_bare_reader_and_unknown_method(mail_instance, peer):
    inst, mport = start(mail_instance, peer)
    with socket.create_connection(("127.0.0.1", mport), timeout=10) as c:
        c.sendall(b"POST / HTTP/1.0\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.0 405")
    with socket.create_connection(("127.0.0.1", mport), timeout=10) as c:
        c.shutdown(socket.SHUT_WR)  # sends nothing: gets the text alone
        data = b""
        for _ in range(100):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.endswith(b"# EOF\n") and b'instance="postfix-dept1"' in data
    parse(data.decode())
