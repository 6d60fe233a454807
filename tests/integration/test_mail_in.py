"""test_mail_in.py: mail in, end to end: real SMTP clients -> smtpd -> cleanup -> qmgr -> local.

These tests drive whole instances; the per-role details are in test_smtpd.py, test_cleanup.py,
test_qmgr_local.py and test_submit.py.
"""
import os
import pathlib
import random
import re
import signal
import smtplib
import subprocess
import threading
import time
import uuid

from mailinstance import TEST_USER, pid_alive, wait_for

HOME = pathlib.Path("/home") / TEST_USER


def message(token, sender="alice@example.org", rcpt=f"{TEST_USER}@localhost"):
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: test {token}\r\n"
            f"Message-ID: <{token}@client.example.org>\r\n\r\nbody of {token}\r\n")


def maildir_files_with(token):
    found = []
    for sub in ("new", "cur"):
        d = HOME / "Maildir" / sub
        if d.is_dir():
            for p in d.iterdir():
                try:
                    if token.encode() in p.read_bytes():
                        found.append(p)
                except FileNotFoundError:
                    pass
    return found


def test_swaks_to_maildir(mail_instance):
    inst = mail_instance(main_extra="home_mailbox = Maildir/\n")
    inst.start()
    token = uuid.uuid4().hex
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{inst.port}", "--to", f"{TEST_USER}@localhost",
                        "--from", "alice@example.org", "--header", f"Subject: swaks {token}",
                        "--timeout", "20"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"<[-~] +250 2\.0\.0 Ok: queued as ([0-9A-F]+)", r.stdout)
    assert m, r.stdout
    qid = m.group(1)
    files = wait_for(lambda: maildir_files_with(token), 20, "the message in ~postd-test/Maildir/new")
    try:
        assert len(files) == 1
        text = files[0].read_bytes()
        assert b"Delivered-To: " + f"{TEST_USER}@localhost".encode() in text
        assert b"Return-Path: <alice@example.org>" in text
        assert re.search(rb"Received: from .* by mx\.example\.test \(Postfix\) with E?SMTP id " + qid.encode(),
                         text.replace(b"\n\t", b" "))
        inst.wait_log(rf"{qid}: to=<{TEST_USER}@localhost>, relay=local, delay=[0-9.]+, "
                      rf"delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(delivered to maildir\)")
        inst.wait_log(rf"{qid}: removed")
        log = inst.logtext()
        assert re.search(rf"postfix-test/smtpd\[\d+\]: {qid}: client=", log)
        assert re.search(rf"postfix-test/cleanup\[\d+\]: {qid}: message-id=<", log)
        assert re.search(rf"postfix-test/qmgr\[\d+\]: {qid}: from=<alice@example.org>, size=\d+, nrcpt=1 "
                         r"\(queue active\)", log)
        assert inst.queue_files("incoming") == [] and inst.queue_files("active") == []
    finally:
        for f in files:
            f.unlink()


def test_two_instances_deliver_side_by_side(mail_instance):
    a = mail_instance("postfix-dept1")
    b = mail_instance("postfix-dept2")
    a.start()
    b.start()
    tokens = {}
    for inst in (a, b):
        token = uuid.uuid4().hex
        tokens[inst.name] = token
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=20) as s:
            s.sendmail("alice@example.org", [f"{TEST_USER}@localhost"], message(token))
    for inst in (a, b):
        wait_for(lambda: tokens[inst.name].encode() in inst.mbox(TEST_USER), 20, f"delivery in {inst.name}")
        other = b if inst is a else a
        assert tokens[inst.name].encode() not in other.mbox(TEST_USER)
        # local logs right after it wrote the mailbox: wait for the line rather than race it.
        inst.wait_log(rf"{inst.name}/smtpd\[")
        inst.wait_log(rf"{inst.name}/local\[\d+\]: .*status=sent")
        assert f"{other.name}/" not in inst.logtext()
    mbox = a.mbox(TEST_USER)
    assert mbox.startswith(b"From alice@example.org ")


def send_until(port, tokens_acked, stop, errors, limit=400):
    """Send messages one per session until stop is set or limit is reached; record the acked ones."""
    for _ in range(limit):
        if stop.is_set():
            return
        token = uuid.uuid4().hex
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.sendmail("alice@example.org", [f"{TEST_USER}@localhost"], message(token))
            tokens_acked.append(token)
        except (smtplib.SMTPException, OSError) as e:
            errors.append(repr(e))
            time.sleep(0.1)


def test_crash_at_random_points_loses_and_duplicates_nothing(mail_instance):
    """SIGKILL smtpd, cleanup and the master under load; every message that got 250 is delivered once."""
    inst = mail_instance("postfix-crash")
    inst.start()
    rng = random.Random(20261123)
    acked, errors = [], []
    stop = threading.Event()
    senders = [threading.Thread(target=send_until, args=(inst.port, acked, stop, errors)) for _ in range(3)]
    for t in senders:
        t.start()
    kills = []
    try:
        for _ in range(8):  # bounded: eight kills, about 0.2-0.6 s apart, while the senders run
            time.sleep(rng.uniform(0.2, 0.6))
            running = {d: inst.daemon_pids(d) for d in ("smtpd", "cleanup", "master")}
            candidates = [d for d, pids in running.items() if pids]
            if not candidates:
                continue
            victim = rng.choice(candidates)
            pid = rng.choice(running[victim])
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(victim)
            except ProcessLookupError:
                continue
            if victim == "master":
                wait_for(lambda: not pid_alive(pid), 10, "the killed master to be gone")
                # its children follow it (PDEATHSIG); then the operator starts it again
                wait_for(lambda: not inst.daemon_pids("smtpd") and not inst.daemon_pids("cleanup"), 15,
                         "the master's children to exit")
                inst.start()
    finally:
        stop.set()
        for t in senders:
            t.join(timeout=60)
    assert set(kills) & {"smtpd", "cleanup"}, f"no smtpd or cleanup was killed ({kills}): the test proved little"
    assert len(acked) >= 5, f"too few messages accepted ({len(acked)}); errors: {errors[:5]}"
    master = inst.master_pid()
    if not master or not pid_alive(master):
        inst.start()

    def all_delivered():
        box = inst.mbox(TEST_USER)
        return all(t.encode() in box for t in acked)

    wait_for(all_delivered, 90, "every acknowledged message in the mailbox", interval=0.5)
    box = inst.mbox(TEST_USER)
    for t in acked:
        # Subject and body each carry the token once: two occurrences per delivered copy.
        assert box.count(f"test {t}".encode()) == 1, f"message {t} delivered {box.count(t.encode()) // 2} times"
    print(f"kills: {kills}; acked {len(acked)}, client-side errors {len(errors)}")
