"""test_proxy_filter.py: smtpd_proxy_filter, Postfix's before-queue content filter, in seed 000's layout:
client -> A's smtpd (-o smtpd_proxy_filter=127.0.0.1:FPORT) -> a real aiosmtpd proxy started here (adds a
header, speaks XFORWARD) -> a re-injection smtpd (-o content_filter= -o receive_override_options=...) ->
mailbox. smtpd queues nothing itself: the filter's verdict, and its downstream's, is the client's."""
import asyncio
import os
import pathlib
import re
import smtplib
import socket
import threading
import time
import uuid

import pytest

from conftest import require
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, free_port, vm_kib, wait_for

try:
    from aiosmtpd.controller import Controller, UnixSocketController
    from aiosmtpd.smtp import SMTP
except ImportError:  # apt-get install python3-aiosmtpd
    Controller = UnixSocketController = SMTP = None

RCPT = f"{TEST_USER}@mx.example.test"
# The client connects from here; smtpd reaches the filter from 127.0.0.1: XFORWARD must say .2.
CLIENT_ADDR = "127.0.0.2"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
SPEED_ADJUST = "  -o smtpd_proxy_options=speed_adjust\n"

REINJECT_OPTIONS = ("  -o content_filter=\n"
                    "  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,"
                    "no_address_mappings\n"
                    "  -o smtpd_client_restrictions=permit_mynetworks,reject\n"
                    "  -o mynetworks=127.0.0.0/8\n")


class ProxyHandler:
    """The filter's logic: records what it was told, rejects or delays on request, adds X-Filtered and hands
    the message to the re-injection port, and answers with the downstream's verdict."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.xforward = []  # the argument of each XFORWARD command
        self.rcpts_seen = []  # every RCPT TO address, accepted or not
        self.mail_params = []
        self.contents = []
        self.quits = 0
        self.forwarded = 0
        self.reply_delay = 0.0
        self.ehlos = 0  # connections that got as far as EHLO

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlos += 1
        session.host_name = hostname
        return responses[:-1] + ["250-XFORWARD NAME ADDR PORT PROTO HELO SOURCE", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.mail_params.append(list(mail_options))
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpts_seen.append(address)
        if address.startswith("filter-refuses@"):
            return "550 5.1.1 <filter-refuses@mx.example.test>: refused by the test proxy"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok by the test proxy"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        self.contents.append(content)
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        if b"Subject: reject me" in content:
            return "550-5.7.1 Rejected by the test proxy:\r\n550 5.7.1 it says reject me"
        data = b"X-Filtered: by the test proxy\r\n" + content
        try:
            with smtplib.SMTP("127.0.0.1", self.target_port, timeout=30) as s:
                s.sendmail(envelope.mail_from, envelope.rcpt_tos, data)
        except (OSError, smtplib.SMTPException) as e:
            return f"451 4.3.0 re-injection failed: {e}"
        self.forwarded += 1
        return "250 2.0.0 Ok: filtered by the test proxy"


class XforwardSMTP(SMTP if SMTP else object):
    """aiosmtpd's server with the XFORWARD command (Postfix's XFORWARD_README) and a QUIT counter."""

    async def smtp_XFORWARD(self, arg):
        self.event_handler.xforward.append(arg)
        await self.push("250 2.0.0 Ok")

    async def smtp_QUIT(self, arg):
        self.event_handler.quits += 1
        await super().smtp_QUIT(arg)


class ProxyController(Controller if Controller else object):
    def factory(self):
        return XforwardSMTP(self.handler, **self.SMTP_kwargs)


class UnixProxyController(UnixSocketController if UnixSocketController else object):
    def factory(self):
        return XforwardSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def mail_instance(mail_instance, request):
    """conftest's factory, plus a check at the end: no smtpd died meanwhile (a crash after the client's
    last reply, in the filter connection's teardown, would otherwise go unseen; sanitizer builds abort)."""
    made = []

    def make(*args, **kw):
        inst = mail_instance(*args, **kw)
        made.append(inst)
        return inst

    yield make
    expected_exit = "bad_proxy_filter_setting" in request.node.name  # smtpd refuses to start there
    for inst in made:
        died = re.findall(r"process \S+/smtpd pid \d+ (?:killed by signal \d+|exit status \d+)", inst.logtext())
        assert expected_exit or not died, died


@pytest.fixture
def proxy_filter():
    require(Controller, "python3-aiosmtpd (apt-get install python3-aiosmtpd)")
    started = []

    def make(target_port):
        handler = ProxyHandler(target_port)
        c = ProxyController(handler, hostname="127.0.0.1", port=free_port())
        c.start()
        started.append(c)
        return handler, c.port

    yield make
    for c in started:
        c.stop()


def proxied_master_cf(fport, reinject=None, extra=""):
    """A's public smtpd hands each transaction to the filter; the optional re-injection listener takes it
    back in the same instance (the seed 000 layout in one instance)."""
    cf = DEFAULT_MASTER_CF.replace(
        "{port}    inet  n       -       n       -       -       smtpd\n",
        "{port}    inet  n       -       n       -       -       smtpd\n"
        f"  -o smtpd_proxy_filter=127.0.0.1:{fport}\n" + extra)
    if reinject:
        cf += f"127.0.0.1:{reinject} inet n - n - - smtpd\n" + REINJECT_OPTIONS
    return cf


def client(port):
    return smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=(CLIENT_ADDR, 0))


def message(token, subject=None):
    return (f"From: <alice@example.org>\r\nSubject: {subject or 'proxy ' + token}\r\n\r\n"
            f"body {token}\r\n.a line that starts with a dot\r\n")


def seccomp(pid):
    """(Seccomp mode, number of filters or None) of a process, from /proc/PID/status."""
    text = pathlib.Path(f"/proc/{pid}/status").read_text()
    mode = re.search(r"^Seccomp:\s+(\d+)", text, re.M)
    n = re.search(r"^Seccomp_filters:\s+(\d+)", text, re.M)
    return int(mode.group(1)), int(n.group(1)) if n else None


def assert_nothing_queued(inst):
    for q in QUEUES:
        assert inst.queue_files(q) == [], f"{q}: {inst.queue_files(q)}"


def test_seed000_before_queue_chain_through_two_instances(mail_instance, proxy_filter):
    """A (public) proxies every transaction to the filter, which re-injects into B's 10025-style listener;
    the mail arrives once, filtered, with A's Received: header; A queues nothing; the filter's 250 is the
    client's; XFORWARD carries the original client."""
    b_reinject = free_port()
    b = mail_instance(name="postfix-b", master_cf=DEFAULT_MASTER_CF +
                      f"127.0.0.1:{b_reinject} inet n - n - - smtpd\n" + REINJECT_OPTIONS)
    b.start()
    handler, fport = proxy_filter(b_reinject)
    a = mail_instance(name="postfix-a", master_cf=proxied_master_cf(fport))
    a.start()
    token = uuid.uuid4().hex
    with client(a.port) as s:
        s.ehlo("client.example.org")
        code, text = s.mail("alice@example.org", ["SIZE=200", "BODY=8BITMIME"])
        assert code == 250, text
        code, text = s.rcpt(RCPT)
        assert (code, text) == (250, b"2.1.5 Ok by the test proxy")
        code, text = s.data(message(token))
        assert (code, text) == (250, b"2.0.0 Ok: filtered by the test proxy")
    wait_for(lambda: f"proxy {token}".encode() in b.mbox(TEST_USER), 60, "the message in B's mailbox")
    box = b.mbox(TEST_USER).decode()
    assert box.count(f"Subject: proxy {token}") == 1 and box.count("X-Filtered: by the test proxy") == 1, box
    assert "\n.a line that starts with a dot\n" in box, box  # dot-stuffed on the way, unstuffed again
    seen = handler.contents[0].decode()
    assert seen.startswith("Received: from client.example.org (unknown [127.0.0.2])\r\n"
                           "\tby mx.example.test (Postfix) with ESMTP\r\n"
                           f"\tfor <{RCPT}>; "), seen
    assert handler.mail_params == [["SIZE=200", "BODY=8BITMIME"]]
    # What the filter was told about the client is the client, not smtpd's own connection.
    xf = " ".join(handler.xforward)
    for attr in ("ADDR=127.0.0.2", "NAME=[UNAVAILABLE]", "PROTO=ESMTP", "HELO=client.example.org",
                 "SOURCE=REMOTE"):
        assert attr in xf.split(), xf
    assert handler.forwarded == 1 and handler.quits == 1
    assert_nothing_queued(a)
    a.wait_log(r"NOQUEUE: proxy-accept: END-OF-MESSAGE from unknown\[127\.0\.0\.2\]: 250 2\.0\.0 Ok: filtered "
               r"by the test proxy; from=<alice@example\.org> to=<postd-test@mx\.example\.test> proto=ESMTP "
               r"helo=<client\.example\.org>")
    assert f"proxy {token}".encode() not in a.mbox(TEST_USER)
    # The filter's replies count as smtpd's own in the disconnect line.
    a.wait_log(r"disconnect from unknown\[127\.0\.0\.2\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
    # smtpd made its TCP connection under its allow-list (the smtpd-proxy-inet role), not without one.
    for pid in a.daemon_pids("smtpd"):
        mode, n = seccomp(pid)
        assert mode == 2 and (n is None or n >= 2), (pid, mode, n)
    assert "seccomp" not in a.logtext()


def test_filter_reject_reaches_the_client_and_nothing_is_queued(mail_instance, proxy_filter):
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject))
    inst.start()
    with client(inst.port) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("alice@example.org", [RCPT], message("x", subject="reject me"))
    # Relayed verbatim, both lines of it.
    assert (e.value.smtp_code, e.value.smtp_error) == (550, b"5.7.1 Rejected by the test proxy:\n5.7.1 it says reject me")
    inst.wait_log(r"NOQUEUE: proxy-reject: END-OF-MESSAGE from unknown\[127\.0\.0\.2\]: 550 5\.7\.1 Rejected by "
                  r"the test proxy: 5\.7\.1 it says reject me; from=<alice@example\.org>")
    assert handler.forwarded == 0 and len(handler.contents) == 1
    assert_nothing_queued(inst)
    assert inst.mbox(TEST_USER) == b""


def test_filter_down_answers_451_at_mail_and_queues_nothing(mail_instance):
    dead = free_port()  # nothing listens there
    inst = mail_instance(master_cf=proxied_master_cf(dead))
    inst.start()
    with client(inst.port) as s:
        s.ehlo("client.example.org")
        code, text = s.mail("alice@example.org")
        assert (code, text) == (451, b"4.3.0 Error: queue file write error")
        # The transaction is over: a RCPT now is out of sequence, not relayed anywhere.
        code, _ = s.rcpt(RCPT)
        assert code == 503
    inst.wait_log(rf"warning: connect to proxy filter 127\.0\.0\.1:{dead}: Connection refused")
    inst.wait_log(r"disconnect from unknown\[127\.0\.0\.2\] ehlo=1 mail=0/1 rcpt=0/1 quit=1 commands=2/4")
    assert_nothing_queued(inst)


def test_recipients_refused_by_smtpd_never_reach_the_filter(mail_instance, proxy_filter):
    """smtpd's own restrictions decide first (relay access, unknown local users); the filter sees only the
    recipients they let through, and may refuse some itself."""
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject), main_extra="mynetworks = 127.0.0.1/32\n")
    with open(inst.aliases, "a") as f:  # a known user that only the filter refuses
        f.write(f"filter-refuses: {TEST_USER}\n")
    inst.newaliases()
    inst.start()
    token = uuid.uuid4().hex
    with client(inst.port) as s:
        s.ehlo("client.example.org")
        assert s.mail("alice@example.org")[0] == 250
        code, text = s.rcpt("someone@elsewhere.example")
        assert code in (454, 554) and b"Relay access denied" in text, text
        code, text = s.rcpt("nosuchuser@mx.example.test")
        assert code == 550 and b"User unknown" in text, text
        code, text = s.rcpt("filter-refuses@mx.example.test")
        assert (code, text) == (550, b"5.1.1 <filter-refuses@mx.example.test>: refused by the test proxy")
        assert s.rcpt(RCPT)[0] == 250
        code, _ = s.data(message(token))
        assert code == 250
    assert handler.rcpts_seen == ["filter-refuses@mx.example.test", RCPT]
    wait_for(lambda: f"proxy {token}".encode() in inst.mbox(TEST_USER), 60, "the message delivered")


def test_client_waits_for_the_filters_final_reply(mail_instance, proxy_filter):
    """smtpd answers the final dot only with the filter's reply: a filter that takes 3 s makes the client
    wait 3 s, and its text is what the client reads."""
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    handler.reply_delay = 3.0
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject))
    inst.start()
    token = uuid.uuid4().hex
    with client(inst.port) as s:
        s.ehlo("client.example.org")
        s.mail("alice@example.org")
        s.rcpt(RCPT)
        start = time.monotonic()
        code, text = s.data(message(token))
        waited = time.monotonic() - start
    assert (code, text) == (250, b"2.0.0 Ok: filtered by the test proxy")
    assert waited >= 2.9, waited
    assert handler.forwarded == 1


def test_filter_too_slow_gets_451_after_smtpd_proxy_timeout(mail_instance, proxy_filter):
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    handler.reply_delay = 6.0
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject, "  -o smtpd_proxy_timeout=2s\n"))
    inst.start()
    with client(inst.port) as s:
        s.ehlo("client.example.org")
        s.mail("alice@example.org")
        s.rcpt(RCPT)
        start = time.monotonic()
        code, text = s.data(message("slow"))
        waited = time.monotonic() - start
    assert (code, text) == (451, b"4.3.0 Error: queue file write error")
    assert 1.5 <= waited < 5.5, waited
    inst.wait_log(rf"warning: proxy filter 127\.0\.0\.1:{fport}: timeout waiting for the reply to END-OF-MESSAGE "
                  r"\(smtpd_proxy_timeout = 2s\)")
    inst.wait_log(r"proxy-reject: END-OF-MESSAGE from unknown\[127\.0\.0\.2\]: 451 4\.3\.0 Error: queue file "
                  r"write error")
    assert_nothing_queued(inst)


def test_rset_ends_the_filters_transaction(mail_instance, proxy_filter):
    """RSET (and the end of each transaction) ends the filter's connection with QUIT; the next MAIL FROM
    opens a new one, as Postfix does. An unknown smtpd_proxy_options word is named."""
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject, "  -o smtpd_proxy_options=speedy\n"))
    inst.start()
    with client(inst.port) as s:
        s.ehlo("client.example.org")
        assert s.mail("alice@example.org")[0] == 250
        assert s.rset()[0] == 250
        wait_for(lambda: handler.quits == 1, 10, "the filter's QUIT after RSET")
        assert s.mail("bob@example.org")[0] == 250
        assert s.rcpt(RCPT)[0] == 250
    wait_for(lambda: handler.quits == 2, 10, "the filter's QUIT after the client's QUIT")
    assert handler.contents == []
    inst.wait_log(r"warning: smtpd_proxy_options: unknown option \"speedy\" ignored \(known: speed_adjust\)")


def test_unix_socket_filter(mail_instance, proxy_filter):
    """smtpd_proxy_filter = unix:PATH: the same conversation over a unix socket (smtpd's own allow-list
    suffices there)."""
    require(UnixSocketController, "python3-aiosmtpd (apt-get install python3-aiosmtpd)")
    reinject = free_port()
    handler = ProxyHandler(reinject)
    inst = mail_instance(master_cf=DEFAULT_MASTER_CF)
    sock = inst.root / "proxy-filter.sock"
    c = UnixProxyController(handler, unix_socket=sock)
    c.start()
    try:
        os.chmod(sock, 0o666)  # smtpd runs as mail_owner
        (inst.etc / "master.cf").write_text(
            DEFAULT_MASTER_CF.format(port=inst.port).replace(
                "smtpd\n", f"smtpd\n  -o smtpd_proxy_filter=unix:{sock}\n", 1)
            + f"127.0.0.1:{reinject} inet n - n - - smtpd\n" + REINJECT_OPTIONS)
        inst.start()
        token = uuid.uuid4().hex
        with client(inst.port) as s:
            code, text = s.ehlo("client.example.org")
            s.mail("alice@example.org")
            s.rcpt(RCPT)
            assert s.data(message(token)) == (250, b"2.0.0 Ok: filtered by the test proxy")
        wait_for(lambda: f"proxy {token}".encode() in inst.mbox(TEST_USER), 60, "the message delivered")
        assert "ADDR=127.0.0.2" in " ".join(handler.xforward).split()
    finally:
        c.stop()


def test_bad_proxy_filter_setting_is_named(mail_instance):
    """A smtpd_proxy_filter postd cannot use stops smtpd at start with a message naming it and the fix."""
    inst = mail_instance(master_cf=proxied_master_cf("no-such-port-name-here"))
    inst.start()
    with socket.create_connection(("127.0.0.1", inst.port), timeout=5):  # the master starts smtpd now
        inst.wait_log(r"smtpd_proxy_filter = 127\.0\.0\.1:no-such-port-name-here: .*write host:port, "
                      r"inet:host:port or unix:path")


class DroppingFilter:
    """A raw SMTP peer that accepts the envelope, says 354, reads a little of the content, then hangs up
    (stall=False) or stops reading until smtpd gives up on it (stall=True); or (slow=True) reads the whole
    message in small pieces with pauses, and accepts it."""

    def __init__(self, stall=False, slow=False):
        self.stall = stall
        self.slow = slow
        self.received = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(60)
        self.port = self.sock.getsockname()[1]
        self.dropped = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            f = conn.makefile("rb")
            conn.sendall(b"220 dropping filter\r\n")
            for _ in range(20):  # bounded: the handshake and envelope are a few lines
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-dropping filter\r\n250 8BITMIME\r\n")
                elif verb == b"DATA" and self.slow:
                    conn.sendall(b"354 go ahead\r\n")
                    if self.read_slowly(conn, f):
                        conn.sendall(b"250 2.0.0 Ok: the slow filter took it\r\n")
                    f.readline()  # QUIT
                    break
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    f.read(65536)
                    if self.stall:  # read nothing more until the test has its answer (bounded)
                        self.release.wait(30)
                    break
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")
        self.dropped.set()

    def read_slowly(self, conn, f, limit=200 << 20):
        """Read up to the final dot, 4 KiB at a time with a pause between, slower than smtpd writes: smtpd
        always has bytes waiting for this filter. True when the dot came."""
        tail = b""
        while self.received < limit:  # bounded by the size, and by the 30 s socket timeout per read
            chunk = f.read1(4096)
            if not chunk:
                return False
            self.received += len(chunk)
            tail = (tail + chunk)[-5:]
            if tail == b"\r\n.\r\n":
                return True
            time.sleep(0.001)
        return False

    def close(self):
        self.release.set()
        self.sock.close()


@pytest.mark.parametrize("speed_adjust", [False, True], ids=["streamed", "speed_adjust"])
@pytest.mark.parametrize("stall", [False, True], ids=["hangs-up", "stops-reading"])
def test_filter_failing_during_data_gets_451_not_a_stall(mail_instance, stall, speed_adjust):
    """The filter goes away (or stops reading until smtpd_proxy_timeout) in the middle of a large message:
    smtpd goes on reading the client (it had paused while the filter was slow) and its final dot gets
    451; nothing is queued."""
    peer = DroppingFilter(stall)
    try:
        extra = "  -o smtpd_proxy_timeout=2s\n" + (SPEED_ADJUST if speed_adjust else "")
        inst = mail_instance(master_cf=proxied_master_cf(peer.port, extra=extra),
                             main_extra="message_size_limit = 100000000\n")
        inst.start()
        # More than the kernel's socket buffers hold between smtpd and the filter (a few MB on lo), so that
        # smtpd's own bound on unsent content is reached and it stops reading the client.
        body = ("x" * 998 + "\r\n") * (16 * 1024)  # 16 MB
        with client(inst.port) as s:
            s.ehlo("client.example.org")
            assert s.mail("alice@example.org")[0] == 250
            assert s.rcpt(RCPT)[0] == 250
            start = time.monotonic()
            code, text = s.data(f"Subject: big\r\n\r\n{body}")
            waited = time.monotonic() - start
            peer.release.set()
        assert (code, text) == (451, b"4.3.0 Error: queue file write error")
        assert waited < 30, waited
        inst.wait_log(rf"warning: proxy filter 127\.0\.0\.1:{peer.port}: " +
                      ("timeout sending the message content" if stall else ""))
        wait_for(peer.dropped.is_set, 30, "the filter's connection closed")
        assert_nothing_queued(inst)
    finally:
        peer.close()


@pytest.mark.parametrize("speed_adjust", [False, True], ids=["streamed", "speed_adjust"])
def test_large_message_passes_whole(mail_instance, proxy_filter, speed_adjust):
    """A message larger than smtpd's backlog bound passes whole: streamed (smtpd pauses the client while the
    filter reads) or kept whole and replayed (speed_adjust)."""
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject, SPEED_ADJUST if speed_adjust else ""))
    inst.start()
    lines = [f"line {i:07d} " + "y" * 80 for i in range(30000)]  # about 2.7 MB
    with client(inst.port) as s:
        s.sendmail("alice@example.org", [RCPT], "Subject: large\r\n\r\n" + "\r\n".join(lines) + "\r\n")
    wait_for(lambda: b"line 0029999" in inst.mbox(TEST_USER), 60, "the large message delivered")
    box = inst.mbox(TEST_USER).decode()
    assert box.count("line ") == 30000 and box.count("X-Filtered:") == 1
    assert "\n".join(lines) in box.replace("\r\n", "\n")


def test_smtpd_memory_stays_bounded_with_a_slow_filter(mail_instance):
    """16 MiB through a filter that reads in small pieces: smtpd pauses the client instead of buffering, so
    its peak RSS stays far below the message size."""
    peer = DroppingFilter(slow=True)
    try:
        inst = mail_instance(master_cf=proxied_master_cf(peer.port), main_extra="message_size_limit = 0\n")
        inst.start()
        size = 16 << 20
        body = ("z" * 78 + "\r\n") * (size // 80)
        with client(inst.port) as s:
            s.ehlo("client.example.org")
            assert s.mail("alice@example.org")[0] == 250
            assert s.rcpt(RCPT)[0] == 250
            (pid,) = inst.daemon_pids("smtpd")
            before = vm_kib(pid, "VmHWM")  # what smtpd needed before the message (larger in a sanitizer build)
            code, text = s.data(f"Subject: slow\r\n\r\n{body}")
            assert (code, text) == (250, b"2.0.0 Ok: the slow filter took it")
            after = vm_kib(pid, "VmHWM")
        assert peer.received >= size
        print(f"[figure] smtpd peak RSS, {size >> 20} MiB message through a slow before-queue filter: "
              f"{after} KiB ({after - before} KiB more than before the message)")
        assert after - before < 8 * 1024, (before, after)
    finally:
        peer.close()


def test_speed_adjust_connects_only_after_the_final_dot(mail_instance, proxy_filter):
    """smtpd_proxy_options = speed_adjust: smtpd answers MAIL, RCPT and DATA itself and keeps the message;
    the filter hears of it only when it is complete, and its reply to the final dot is the client's."""
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject, SPEED_ADJUST))
    inst.start()
    token = uuid.uuid4().hex
    with client(inst.port) as s:
        s.ehlo("client.example.org")
        assert s.mail("alice@example.org", ["SIZE=300"]) == (250, b"2.1.0 Ok")
        assert s.rcpt(RCPT) == (250, b"2.1.5 Ok")
        code, _ = s.docmd("DATA")
        assert code == 354
        time.sleep(0.3)  # nothing may reach the filter before the final dot (a bounded, negative check)
        assert handler.ehlos == 0
        s.send(smtplib.quotedata(message(token)).encode() + b".\r\n")
        code, text = s.getreply()
        assert (code, text) == (250, b"2.0.0 Ok: filtered by the test proxy")
    assert handler.ehlos == 1 and handler.mail_params == [["SIZE=300"]]
    assert "ADDR=127.0.0.2" in " ".join(handler.xforward).split()
    assert handler.contents[0].startswith(b"Received: from client.example.org (unknown [127.0.0.2])\r\n")
    wait_for(lambda: f"proxy {token}".encode() in inst.mbox(TEST_USER), 60, "the message delivered")
    box = inst.mbox(TEST_USER).decode()
    assert box.count("X-Filtered:") == 1 and "\n.a line that starts with a dot\n" in box, box
    inst.wait_log(r"NOQUEUE: proxy-accept: END-OF-MESSAGE from unknown\[127\.0\.0\.2\]: 250 2\.0\.0 Ok: filtered")


def test_speed_adjust_refusals_come_at_the_final_dot(mail_instance, proxy_filter):
    """With speed_adjust the filter's refusal of a recipient (or of the content) is the reply to the final
    dot; a filter that is down is 451 there; nothing is queued either way."""
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject, SPEED_ADJUST))
    with open(inst.aliases, "a") as f:
        f.write(f"filter-refuses: {TEST_USER}\n")
    inst.newaliases()
    inst.start()
    with client(inst.port) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("alice@example.org", ["filter-refuses@mx.example.test", RCPT], message("r1"))
        assert (e.value.smtp_code, e.value.smtp_error) == (
            550, b"5.1.1 <filter-refuses@mx.example.test>: refused by the test proxy")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("alice@example.org", [RCPT], message("r2", subject="reject me"))
        assert e.value.smtp_code == 550 and b"it says reject me" in e.value.smtp_error
    assert handler.forwarded == 0 and len(handler.contents) == 1
    assert_nothing_queued(inst)
    dead = free_port()
    down = mail_instance(name="postfix-down", master_cf=proxied_master_cf(dead, extra=SPEED_ADJUST))
    down.start()
    with client(down.port) as s:
        s.ehlo("client.example.org")
        assert s.mail("alice@example.org")[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        assert s.data(message("down")) == (451, b"4.3.0 Error: queue file write error")
    down.wait_log(rf"warning: connect to proxy filter 127\.0\.0\.1:{dead}: Connection refused")
    assert_nothing_queued(down)


def test_speed_adjust_needs_a_size_limit(mail_instance, proxy_filter):
    """Without message_size_limit smtpd would keep messages of any size in memory: it says so and connects
    at MAIL FROM instead."""
    reinject = free_port()
    handler, fport = proxy_filter(reinject)
    inst = mail_instance(master_cf=proxied_master_cf(fport, reinject, SPEED_ADJUST),
                         main_extra="message_size_limit = 0\n")
    inst.start()
    with client(inst.port) as s:
        s.ehlo("client.example.org")
        assert s.mail("alice@example.org")[0] == 250
        assert handler.ehlos == 1
    inst.wait_log(r"warning: smtpd_proxy_options = speed_adjust needs a message_size_limit")
