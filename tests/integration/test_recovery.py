"""test_recovery.py: mail survives its daemons: qmgr and local killed under load, a file left in active/,
retries spaced by the backoff settings, and submission refused to a user authorized_submit_users names."""
import os
import re
import signal
import smtplib
import subprocess
import time

from conftest import BIN, run
from mailinstance import DEFAULT_MASTER_CF, TEST_USER, wait_for

BASE = "mynetworks = 127.0.0.1/32\n"


def smtp_submit(inst, subject, rcpt=f"{TEST_USER}@localhost"):
    """One message over SMTP; returns the queue ID of the 250 reply (so it was acknowledged)."""
    with smtplib.SMTP("127.0.0.1", inst.port, timeout=30) as c:
        c.ehlo("client.example.test")
        assert c.mail("sender@example.test")[0] == 250
        assert c.rcpt(rcpt)[0] == 250
        code, msg = c.data(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode())
        assert code == 250, (code, msg)
        return msg.decode().rsplit(" ", 1)[1]


def subjects(inst):
    """Subject lines of the test user's mbox, in order (one per delivered copy)."""
    return re.findall(r"^Subject: (.*)$", inst.mbox(TEST_USER).decode(errors="replace"), re.M)


def kill_all(inst, daemon):
    """SIGKILL every process of daemon; returns their PIDs once each is seen dead by the master."""
    pids = inst.daemon_pids(daemon)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        inst.wait_log(rf"warning: process \S+/{daemon} pid {pid} killed by signal 9")
    return pids


def test_qmgr_and_local_killed_under_load(mail_instance):
    """Every acknowledged message is delivered exactly once although qmgr and local die mid-stream."""
    inst = mail_instance(master_cf=DEFAULT_MASTER_CF, main_extra=BASE)
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    n = 40
    acked = {}
    killed = {"qmgr": [], "local": []}
    for i in range(n):
        acked[f"load {i}"] = smtp_submit(inst, f"load {i}")
        # The kills come while mail keeps arriving: the messages after each are what makes the master
        # start the next qmgr (as in Postfix: on demand, or at the next wakeup, 300 s away here).
        if i == 10:
            wait_for(lambda: len(subjects(inst)) >= 3, 30, "the first deliveries")
            killed["qmgr"] += kill_all(inst, "qmgr")
        elif i == 20:
            wait_for(lambda: inst.daemon_pids("local"), 30, "a local process at work")
            killed["local"] += kill_all(inst, "local")
        elif i == 30:
            # A qmgr that has done some work since it was started (killed at once, the master would
            # rightly take it for a bad startup and throttle the service).
            pid = wait_for(lambda: inst.daemon_pids("qmgr"), 30, "qmgr restarted by the master")[0]
            inst.wait_log(rf"postfix-test/qmgr\[{pid}\]: [0-9A-F]+: from=<")
            killed["qmgr"] += kill_all(inst, "qmgr")
    assert len(killed["qmgr"]) == 2 and killed["local"], killed

    want = sorted(acked)
    try:
        wait_for(lambda: sorted(set(subjects(inst))) == want, 60, "every acknowledged message delivered")
    except AssertionError as e:
        missing = {s: acked[s] for s in want if s not in subjects(inst)}
        queues = {q: inst.queue_files(q) for q in ("incoming", "active", "deferred", "hold", "corrupt")}
        lines = [l for l in inst.logtext().splitlines() if any(q in l for q in missing.values())
                 or "warning" in l or "fatal" in l or "panic" in l]
        raise AssertionError(f"{e}\nmissing: {missing}\nqueues: {queues}\n" + "\n".join(lines[-60:])) from None
    # Exactly once: no copy twice, nothing left in the queue, one delivery line per queue ID. (Not
    # one "removed" line each: a qmgr killed between the unlink and its log line loses the line alone.)
    try:
        wait_for(lambda: not any(inst.queue_files(q) for q in ("incoming", "active", "deferred")), 30,
                 "an empty queue")
    finally:
        got = subjects(inst)
        dups = {s: acked[s] for s in set(got) if got.count(s) > 1}
        assert not dups, (dups, [l for l in inst.logtext().splitlines() if any(q in l for q in dups.values())])
    assert sorted(got) == want
    text = inst.logtext()
    sent = {qid: len(re.findall(rf"{qid}: to=<{TEST_USER}@localhost>, relay=local, .*status=sent", text))
            for qid in acked.values()}
    assert set(sent.values()) == {1}, {q: n for q, n in sent.items() if n != 1}


def test_file_left_in_active_is_delivered_after_restart(mail_instance):
    """A message qmgr had taken into active/ when everything stopped is delivered at the next start."""
    inst = mail_instance(master_cf=DEFAULT_MASTER_CF, main_extra=BASE)
    inst.start()
    inst.stop()
    r = inst.cmd("queue-inject", "-f", "sender@example.test", f"{TEST_USER}@localhost",
                 input="Subject: left in active\n\nbody\n")
    assert r.returncode == 0, r.stderr
    qid = r.stdout.strip()
    (inst.spool / "incoming" / qid).rename(inst.spool / "active" / qid)
    assert inst.queue_files("active") == [qid]
    inst.start()
    inst.wait_log(rf"{qid}: to=<{TEST_USER}@localhost>, relay=local, .*status=sent")
    inst.wait_log(rf"{qid}: removed")
    assert subjects(inst) == ["left in active"]
    wait_for(lambda: not any(inst.queue_files(q) for q in ("incoming", "active", "deferred")), 10,
             "an empty queue")


def deferred_path(inst, qid):
    found = [p for p in (inst.spool / "deferred").rglob(qid)]
    return found[0] if found else None


def test_backoff_intervals(mail_instance):
    """A deferred message's next attempt (its file's mtime) is its age doubled from minimal_backoff_time,
    never above maximal_backoff_time; and the retry waits for it."""
    inst = mail_instance(master_cf=DEFAULT_MASTER_CF, main_extra=BASE +
                         "minimal_backoff_time = 3s\nmaximal_backoff_time = 12s\nqueue_run_delay = 1s\n"
                         "transport_maps = inline:{ {faraway.example=nosuch:} }\n")
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 20, "the qmgr process")
    # age -> expected interval: 0 s -> 3 s (the minimum), 7 s -> 6 s (3 doubled while <= the age),
    # 2 h -> 12 s (the maximum).
    cases = {0: 3, 7: 6, 7200: 12}
    qids = {}
    for age in cases:
        extra = ("-a", str(age)) if age else ()
        r = inst.cmd("queue-inject", "-f", "sender@example.test", *extra, "x@faraway.example",
                     input=f"Subject: age {age}\n\nbody\n")
        assert r.returncode == 0, r.stderr
        qids[age] = r.stdout.strip()
    first = {}
    for age, qid in qids.items():
        inst.wait_log(rf"{qid}: to=<x@faraway\.example>, .*status=deferred")
        seen = time.time()
        path = wait_for(lambda: deferred_path(inst, qid), 10, f"{qid} in deferred/")
        wait = path.stat().st_mtime - seen
        # The mtime was set before the move to deferred/, which was before we saw it there.
        assert cases[age] - 1.5 <= wait <= cases[age] + 0.2, (age, wait)
        first[age] = (seen, path.stat().st_mtime)

    # The next attempt of the youngest comes when its time is due, not before (the positive signal
    # is the second deferral line itself).
    qid = qids[0]
    n_lines = lambda: len(re.findall(rf"{qid}: to=<x@faraway\.example>, .*status=deferred", inst.logtext()))
    wait_for(lambda: n_lines() >= 2, 15, "the second attempt")
    retried = time.time()
    due = first[0][1]
    assert due - 0.5 <= retried <= due + 1 + 3, (due, retried)
    # The oldest is not retried before its 12 s: it has exactly one deferral line when the youngest has two.
    old = qids[7200]
    assert len(re.findall(rf"{old}: to=<x@faraway\.example>, .*status=deferred", inst.logtext())) == 1


def test_authorized_submit_users_refuses_a_user(mail_instance):
    """authorized_submit_users = !postd-test: sendmail and postdrop refuse that user, with its name and uid."""
    import pwd
    uid = pwd.getpwnam(TEST_USER).pw_uid
    inst = mail_instance(main_extra=f"authorized_submit_users = !{TEST_USER}, static:anyone\n")
    inst.start()
    as_user = ["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups", "--",
               "env", f"POSTD_DEFAULT_CONFIG_DIR={inst.etc}", "POSTD_LOG=stderr"]
    msg = "Subject: refused\n\nbody\n"
    r = subprocess.run(as_user + [str(BIN / "sendmail"), "-f", "x@example.test", "root"], input=msg,
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (75, f"sendmail: fatal: User {TEST_USER}({uid}) is not allowed to "
                                            "submit mail\n"), r
    r = subprocess.run(as_user + [str(BIN / "postdrop")], input="", capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (75, f"postdrop: fatal: User {TEST_USER}({uid}) is not allowed to "
                                            "submit mail\n"), r
    assert inst.queue_files("maildrop") == []
    # The same table lets root through: the refusal above is the table's doing.
    r = run("sendmail", "-C", inst.etc, "-f", "x@example.test", TEST_USER, input=msg, env=inst.env)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: b"Subject: refused" in inst.mbox(TEST_USER), 30, "root's message delivered")
