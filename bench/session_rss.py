#!/usr/bin/python3
"""session_rss.py: memory per SMTP session of smtpd and cleanup, at 1 KiB and at 50 MiB per message.

For each message size, a fresh instance (tests/integration/mailinstance.py, message_size_limit = 0,
local mail discarded) gets one warm-up message (so that cleanup runs), then N concurrent sessions each
send one message. Printed per daemon: VmRSS before the sessions (summed over its processes), the peak
(VmHWM, summed) after them, and (peak - before) / N: the memory one session costs. Not a test: the
figures go in the report. Run as root from the repository (uses build/ or $POSTD_BUILD_DIR):

    bench/session_rss.py [-n SESSIONS] [--sizes 1024,52428800]
"""
import argparse
import os
import pathlib
import smtplib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("POSTD_BUILD_DIR", str(ROOT / "build"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from mailinstance import TEST_USER, MailInstance, vm_kib, wait_for  # noqa: E402

DAEMONS = ("smtpd", "cleanup")


def total(inst, daemon, field):
    return sum(vm_kib(pid, field) or 0 for pid in inst.daemon_pids(daemon))  # a process gone counts 0


def message(size):
    head = b"From: bench@example.org\r\nSubject: rss\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def send(port, msg, barrier, errors):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as s:
            s.ehlo("bench.example.org")
            barrier.wait(60)  # every session is connected before any sends its DATA
            s.sendmail("bench@example.org", [f"{TEST_USER}@mx.example.test"], msg)
    except Exception as e:  # reported, not raised: the figures of the others still count
        errors.append(repr(e))


def run_size(base, size, sessions):
    inst = MailInstance(base / f"size{size}", name="postfix-bench",
                        main_extra="message_size_limit = 0\nlocal_transport = discard\n")
    inst.start()
    try:
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=60) as s:
            s.sendmail("bench@example.org", [f"{TEST_USER}@mx.example.test"], message(1024))
        wait_for(lambda: all(inst.daemon_pids(d) for d in DAEMONS), 20, "smtpd and cleanup")
        before = {d: total(inst, d, "VmRSS") for d in DAEMONS}
        msg = message(size)
        barrier = threading.Barrier(sessions)
        errors = []
        threads = [threading.Thread(target=send, args=(inst.port, msg, barrier, errors))
                   for _ in range(sessions)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        elapsed = time.monotonic() - t0
        peak = {d: total(inst, d, "VmHWM") for d in DAEMONS}
        after = {d: total(inst, d, "VmRSS") for d in DAEMONS}
        for d in DAEMONS:
            print(f"{size:>10} B x {sessions:>3} sessions  {d:<8} before {before[d] / 1024:7.1f} MiB  "
                  f"peak {peak[d] / 1024:7.1f} MiB  after {after[d] / 1024:7.1f} MiB  "
                  f"per session {(peak[d] - before[d]) / 1024 / sessions:7.2f} MiB")
        print(f"{size:>10} B x {sessions:>3} sessions  accepted in {elapsed:.1f} s"
              + (f"; {len(errors)} failed: {errors[0]}" if errors else ""))
        sys.stdout.flush()
    finally:
        inst.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--sessions", type=int, default=10)
    ap.add_argument("--sizes", default="1024,52428800")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("session_rss.py: run as root (the instance chowns its directories to mail_owner)")
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-rss-", dir="/tmp"))
    os.chmod(base, 0o755)
    print(f"build {os.environ['POSTD_BUILD_DIR']}")
    try:
        for size in (int(x) for x in args.sizes.split(",")):
            run_size(base, size, args.sessions)
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {base}")
        else:
            os.system(f"rm -rf {base}")


if __name__ == "__main__":
    main()
