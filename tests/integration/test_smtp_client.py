"""test_smtp_client.py: the smtp delivery agent against real SMTP peers on loopback.

Each test runs an instance whose master.cf holds only the smtp service, queues a message in
active/ and sends qmgr's delivery request with deliver-request (built with the smtp role), then
checks the agent's reply, the peer's view, the log line and the recipient's slot in the queue file.
"""
import os
import pathlib
import re
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import require, run
from mailinstance import free_port, wait_for
from smtp_peer import SmtpPeer, make_cert

ROOT = pathlib.Path(__file__).resolve().parents[2]
SINK_DIR = pathlib.Path("/opt/postfix-tools")

SMTP_ONLY_MASTER_CF = "smtp      unix  -       -       n       -       1       smtp\n"

MESSAGE = ("From: <alice@example.org>\nTo: <bob@example.net>\nSubject: client test\n\n"
           "first line\n.leading dot\n..two dots\nlast line\n")


@pytest.fixture
def peer():
    p = SmtpPeer()
    yield p
    p.close()


@pytest.fixture
def smtp_instance(mail_instance, tmp_path):
    """An instance with only the smtp service; extra main.cf text as the argument."""
    # The agent runs as mail_owner: it must be able to reach the instance under pytest's 0700 dirs.
    for p in [tmp_path, *tmp_path.parents]:
        if str(p) in ("/", "/tmp"):
            break
        os.chmod(p, os.stat(p).st_mode | 0o011)

    def make(extra=""):
        inst = mail_instance(master_cf=SMTP_ONLY_MASTER_CF, main_extra=extra)
        return inst
    return make


def deliver(inst, nexthop, *rcpts, content=MESSAGE, sender="alice@example.org", timeout=90):
    r = run("deliver-request", "-c", inst.etc, "-n", nexthop, "-f", sender, *rcpts, input=content,
            env=inst.env, timeout=timeout)
    assert r.returncode == 0, f"{r.stderr}\n--- maillog:\n{inst.logtext()}"
    lines = r.stdout.splitlines()
    qid = lines[0].split("=", 1)[1]
    replies = []
    for line in lines[1:]:
        m = re.match(r"rcpt_index=(\d+) status=(\w+) dsn=(\S*) reason=(.*)$", line)
        assert m, line
        replies.append({"index": int(m[1]), "status": m[2], "dsn": m[3], "reason": m[4]})
    return qid, replies


def slots(inst, qid):
    r = run("deliver-request", "-c", inst.etc, "-S", qid, env=inst.env)
    assert r.returncode == 0, r.stderr
    return {l.split()[0]: (l.split()[1], l.split()[2]) for l in r.stdout.splitlines()}


def test_delivery_to_literal_nexthop(smtp_instance, peer):
    inst = smtp_instance()
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies == [{"index": 0, "status": "sent", "dsn": "2.0.0", "reason": "250 2.0.0 Ok: queued as PEER1"}]
    msgs = peer.messages()
    assert len(msgs) == 1
    assert msgs[0]["mail_from"] == "alice@example.org" and msgs[0]["rcpts"] == ["bob@example.net"]
    # CRLF line ends and dot-stuffing on the wire.
    assert msgs[0]["data"] == MESSAGE.replace("\n.", "\n..").replace("\n", "\r\n").encode()
    assert any(c.startswith("EHLO mx.example.test") for c in peer.sessions[0].commands)
    inst.wait_log(rf"postfix-test/smtp\[\d+\]: {qid}: to=<bob@example\.net>, "
                  rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{peer.port}, delay=[0-9.]+, "
                  r"delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, "
                  r"status=sent \(250 2\.0\.0 Ok: queued as PEER1\)")
    assert slots(inst, qid) == {"bob@example.net": ("delivered", "2.0.0")}


def test_rcpt_5xx_bounced_4xx_deferred(smtp_instance, peer):
    peer.rcpt_replies = {"nobody@example.net": "550 5.1.1 <nobody@example.net>: no such user",
                         "later@example.net": "451 4.3.0 try again later"}
    inst = smtp_instance()
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net", "nobody@example.net",
                           "later@example.net")
    assert [(r["status"], r["dsn"]) for r in replies] == [("sent", "2.0.0"), ("bounced", "5.1.1"),
                                                          ("deferred", "4.3.0")]
    assert replies[1]["reason"] == (f"host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <nobody@example.net>: "
                                    "no such user (in reply to RCPT TO command)")
    inst.wait_log(rf"{qid}: to=<later@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{peer.port}, .*"
                  r"dsn=4\.3\.0, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.3\.0 try "
                  r"again later \(in reply to RCPT TO command\)\)")
    inst.wait_log(rf"{qid}: to=<nobody@example\.net>, .* status=bounced \(host")
    assert peer.messages()[0]["rcpts"] == ["bob@example.net"]
    assert slots(inst, qid) == {"bob@example.net": ("delivered", "2.0.0"),
                                "nobody@example.net": ("bounced", "5.1.1"),
                                "later@example.net": ("pending", "-")}


def test_data_5xx_bounces_the_message(smtp_instance, peer):
    peer.end_reply = "554 5.7.1 message content rejected"
    inst = smtp_instance()
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "bounced" and replies[0]["dsn"] == "5.7.1"
    assert replies[0]["reason"].endswith("(in reply to end of DATA command)")


def test_connection_refused_is_deferred(smtp_instance):
    port = free_port()  # nothing listens there
    inst = smtp_instance()
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{port}", "bob@example.net")
    assert replies[0]["status"] == "deferred" and replies[0]["dsn"].startswith("4.")
    assert replies[0]["reason"] == f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    inst.wait_log(rf"{qid}: to=<bob@example\.net>, relay=none, delay=[0-9.]+, delays=[0-9./]+, dsn=4\.4\.1, "
                  rf"status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:{port}: Connection refused\)")
    assert slots(inst, qid) == {"bob@example.net": ("pending", "-")}


def test_dropped_connection_is_deferred(smtp_instance, peer):
    peer.drop_after = "DATA"
    inst = smtp_instance()
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred"
    assert replies[0]["reason"] == "lost connection with 127.0.0.1[127.0.0.1] while sending DATA command"


def test_fallback_relay_when_primary_is_down(smtp_instance, peer):
    down = free_port()
    inst = smtp_instance(f"smtp_fallback_relay = [127.0.0.1]:{peer.port}\n")
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{down}", "bob@example.net")
    assert replies[0]["status"] == "sent", replies
    assert len(peer.messages()) == 1
    inst.wait_log(rf"{qid}: to=<bob@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{peer.port}, .*status=sent")


def test_name_lookup_off_the_event_loop(smtp_instance, peer):
    # [localhost] is looked up (A records, no MX) in the resolver thread.
    inst = smtp_instance()
    inst.start()
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "sent", replies
    inst.wait_log(rf"{qid}: to=<bob@example\.net>, relay=localhost\[127\.0\.0\.1\]:{peer.port}, ")


def test_starttls_may(smtp_instance, peer, tmp_path):
    peer.starttls = make_cert(tmp_path)
    inst = smtp_instance("smtp_tls_security_level = may\nsmtp_tls_loglevel = 1\n")
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "sent", replies
    assert peer.sessions[0].tls
    inst.wait_log(rf"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:{peer.port}: "
                  r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)")


def test_starttls_verify_with_cafile(smtp_instance, peer, tmp_path):
    cert, key = make_cert(tmp_path)
    peer.starttls = (cert, key)
    inst = smtp_instance("smtp_tls_security_level = verify\nsmtp_tls_loglevel = 1\n")
    # Inside the instance: another pytest run may set /tmp/pytest-of-root back to 0700 at any time.
    shutil.copy(cert, inst_ca := inst.root / "ca.pem")
    os.chmod(inst_ca, 0o644)
    inst.postconf(f"smtp_tls_CAfile = {inst_ca}")
    inst.start()
    qid, replies = deliver(inst, f"[localhost]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "sent", replies
    inst.wait_log(rf"Verified TLS connection established to localhost\[127\.0\.0\.1\]:{peer.port}: ")


def test_encrypt_refuses_a_peer_without_starttls(smtp_instance, peer):
    inst = smtp_instance("smtp_tls_security_level = encrypt\n")
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred"
    assert replies[0]["reason"] == "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    assert peer.messages() == []


def sasl_map(inst, key, value):
    table = inst.etc / "sasl_passwd"
    table.write_text(f"{key} {value}\n")
    r = run("postmap", "-c", inst.etc, f"hash:{table}")
    assert r.returncode == 0, r.stderr
    return table


def test_sasl_plain_to_submission_peer(smtp_instance, peer):
    peer.auth = {"alice": "s3cret:x"}
    inst = smtp_instance()
    table = sasl_map(inst, f"[127.0.0.1]:{peer.port}", "alice:s3cret:x")
    inst.postconf("smtp_sasl_auth_enable = yes", f"smtp_sasl_password_maps = hash:{table}",
                  "smtp_sasl_security_options = noanonymous")
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "sent", replies
    assert peer.sessions[0].auth_user == "alice"
    assert any(c.startswith("AUTH PLAIN ") for c in peer.sessions[0].commands)


def test_sasl_no_password_in_cleartext_by_default(smtp_instance, peer):
    peer.auth = {"alice": "secret"}
    inst = smtp_instance()
    table = sasl_map(inst, f"[127.0.0.1]:{peer.port}", "alice:secret")
    inst.postconf("smtp_sasl_auth_enable = yes", f"smtp_sasl_password_maps = hash:{table}")
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "deferred"
    assert "noplaintext" in replies[0]["reason"] and "smtp_sasl_security_options" in replies[0]["reason"]
    assert not any(c.startswith("AUTH") for c in peer.sessions[0].commands)


def test_bind_address_seen_by_peer(smtp_instance, peer):
    inst = smtp_instance("smtp_bind_address = 127.0.0.5\n")
    inst.start()
    qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", "bob@example.net")
    assert replies[0]["status"] == "sent", replies
    assert peer.sessions[0].peer[0] == "127.0.0.5"


def test_connection_reuse_across_requests(smtp_instance, peer):
    inst = smtp_instance("smtp_connection_cache_time_limit = 5s\n")
    inst.start()
    for n in range(2):
        qid, replies = deliver(inst, f"[127.0.0.1]:{peer.port}", f"rcpt{n}@example.net")
        assert replies[0]["status"] == "sent", replies
    assert len(peer.messages()) == 2
    assert len(peer.sessions) == 1, [s.commands for s in peer.sessions]
    assert "RSET" in peer.sessions[0].commands
    # The idle connection is closed with QUIT after the cache time limit.
    wait_for(lambda: "QUIT" in peer.sessions[0].commands, 15, "QUIT on the cached connection")


def test_many_messages_to_smtp_sink(smtp_instance):
    r = subprocess.run([str(ROOT / "tests/integration/get-smtp-sink.sh")], capture_output=True, text=True,
                       timeout=300)
    require(r.returncode == 0, f"smtp-sink unavailable: {r.stderr.strip()[-200:]}")
    port = free_port()
    sink = subprocess.Popen([str(SINK_DIR / "usr/sbin/smtp-sink"), "-u", "postfix", "-c",
                             f"127.0.0.1:{port}", "100"],
                            env={**os.environ, "LD_LIBRARY_PATH": str(SINK_DIR / "usr/lib/postfix")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10, "smtp-sink listening")
        inst = smtp_instance()
        inst.start()
        start = time.monotonic()
        for n in range(20):
            qid, replies = deliver(inst, f"[127.0.0.1]:{port}", f"r{n}a@example.net", f"r{n}b@example.net")
            assert [r["status"] for r in replies] == ["sent", "sent"], replies
        assert time.monotonic() - start < 60
        assert len(re.findall(r"status=sent \(250 2\.0\.0 Ok", inst.logtext())) == 40
    finally:
        sink.terminate()
        sink.wait(10)


def test_peer_does_not_count_data_cut_off_by_end_of_stream():
    """The test peer is a witness for the tests above: a DATA that never got its final dot is no message."""
    peer = SmtpPeer()
    try:
        for ending in (b"", b"partial line without end"):
            with socket.create_connection(("127.0.0.1", peer.port), timeout=10) as c:
                f = c.makefile("rb")
                assert f.readline().startswith(b"220")
                for cmd, code in ((b"HELO x", b"250"), (b"MAIL FROM:<a@x>", b"250"), (b"RCPT TO:<b@y>", b"250"),
                                  (b"DATA", b"354")):
                    c.sendall(cmd + b"\r\n")
                    assert f.readline().startswith(code)
                c.sendall(b"Subject: cut\r\n\r\nbody\r\n" + ending)
                c.shutdown(socket.SHUT_WR)
                assert f.readline() == b""  # no reply: the peer saw the end of the stream, not a message
        wait_for(lambda: len(peer.sessions) == 2 and all(s.done for s in peer.sessions), 10, "both sessions ended")
        assert peer.messages() == [] and peer.queued == 0
        # The same dialog with the final dot is a message: the check above can fail.
        with smtplib.SMTP("127.0.0.1", peer.port, timeout=10) as c:
            c.sendmail("a@x", ["b@y"], b"Subject: whole\r\n\r\nbody\r\n")
        assert [m["rcpts"] for m in peer.messages()] == [["b@y"]]
    finally:
        peer.close()
