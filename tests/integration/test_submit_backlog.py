"""test_submit_backlog.py: a burst of sessions that fills cleanup's listen backlog waits for room instead of
getting 451 (smtpd retries the connection with growing pauses, src/lib/proto/cleanup_submit.c)."""
import os
import resource
import signal
import smtplib
import socket
import threading

from mailinstance import TEST_USER, wait_for

# net.core.somaxconn caps every listen backlog (4096 by default): this many pending connections fill it.
FILL_MAX = 5000


def test_full_cleanup_backlog_is_waited_out(mail_instance):
    inst = mail_instance()
    inst.start()
    # A first message, so that a cleanup process runs (the master starts it on demand).
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
        s.sendmail("alice@example.org", [f"{TEST_USER}@mx.example.test"], "Subject: warm-up\r\n\r\nx\r\n")
    path = str(inst.spool / "public" / "cleanup")
    pids = wait_for(lambda: inst.daemon_pids("cleanup") or None, 20, "a cleanup process")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, FILL_MAX + 1024), hard))
    fillers = []
    result = {}
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)  # accepts nothing: connections pile up in the backlog
        for _ in range(FILL_MAX):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(path)
            except BlockingIOError:
                c.close()
                break  # the backlog is full
            fillers.append(c)
        assert len(fillers) < FILL_MAX, "the backlog never filled: the test proves nothing"

        def session():
            try:
                with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as s:
                    s.ehlo("client.example")
                    s.mail("alice@example.org")
                    result["rcpt"] = s.rcpt(f"{TEST_USER}@mx.example.test")
                    result["data"] = s.data("Subject: after the burst\r\n\r\nbody\r\n")
            except (OSError, smtplib.SMTPException) as e:
                result["error"] = e

        t = threading.Thread(target=session)
        t.start()
        # smtpd found the backlog full and keeps trying: no answer to RCPT yet.
        inst.wait_log(r"smtpd\[\d+\]: connect from", 10)
        t.join(1.0)
        assert t.is_alive() and "rcpt" not in result, result
    finally:
        for c in fillers:
            c.close()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    t.join(30)
    assert result.get("rcpt", (0,))[0] == 250, (result, inst.logtext()[-2000:])
    assert result["data"][0] == 250, result
    wait_for(lambda: b"Subject: after the burst" in inst.mbox(TEST_USER), 30, "the delivery")
    assert "queue file write error" not in inst.logtext()
