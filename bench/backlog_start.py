#!/usr/bin/python3
"""backlog_start.py: time from the master's start to READY=1 with N queued messages (bench/backlog_start.sh).

One instance without qmgr (nothing moves the files while we measure) gets N messages in deferred/ from
fill_deferred. The master then runs in the foreground under a NOTIFY_SOCKET this script owns, three times:
  1. N in deferred/: what a restart costs with a deferred backlog (recovery does not read deferred/);
  2. N moved to active/: the worst case after a crash, every file requeued to incoming/ and checked
     completely (structure and CRC-32C) before READY=1;
  3. the same files again, now in incoming/ (page cache warm).
Printed per run: seconds to READY=1, EXTEND_TIMEOUT_USEC messages seen, and the master's recovery line.
"""
import argparse
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("POSTD_BUILD_DIR", str(ROOT / "build"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from mailinstance import MailInstance  # noqa: E402

BIN = pathlib.Path(os.environ["POSTD_BUILD_DIR"]) / "src"
MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
"""
READY_LIMIT_SEC = 1800


def timed_start(inst, sock_path, label):
    note = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    note.bind(sock_path)
    env = dict(os.environ, **inst.env, NOTIFY_SOCKET=sock_path)
    extends = 0
    t0 = time.monotonic()
    proc = subprocess.Popen([str(BIN / "master"), "-c", str(inst.etc), "-d"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = None
    try:
        deadline = t0 + READY_LIMIT_SEC
        while ready is None and time.monotonic() < deadline and proc.poll() is None:
            note.settimeout(1.0)
            try:
                data = note.recv(4096).decode()
            except socket.timeout:
                continue
            if "EXTEND_TIMEOUT_USEC=" in data:
                extends += 1
            if "READY=1" in data.split("\n"):
                ready = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        note.close()
        os.unlink(sock_path)
    lines = re.findall(r"queue recovery: .*", inst.logtext())
    print(f"{label:<34} READY=1 after {ready if ready is None else f'{ready:7.2f} s'}; "
          f"EXTEND_TIMEOUT_USEC x{extends}; {lines[-1] if lines else '(no recovery line)'}", flush=True)


def move_all(inst, src, dst):
    s, d = inst.spool / src, inst.spool / dst
    n = 0
    for name in os.listdir(s):
        os.rename(s / name, d / name)
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--messages", type=int, default=100000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("backlog_start: run as root (the instance chowns its directories to mail_owner)")
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-backlog-", dir="/tmp"))
    os.chmod(base, 0o755)
    inst = MailInstance(base / "i", name="postfix-backlog", master_cf=MASTER_CF)
    try:
        inst.start()  # creates the queue layout
        inst.stop()
        t = time.monotonic()
        r = subprocess.run([str(BIN.parent / "bench" / "fill_deferred"), "-c", str(inst.etc), "-n", str(args.messages)],
                           capture_output=True, text=True, env=dict(os.environ, **inst.env))
        if r.returncode != 0:
            sys.exit(f"fill_deferred failed: {r.stderr}")
        print(f"build {BIN}; fill_deferred: {r.stdout.strip()} ({time.monotonic() - t:.0f} s)", flush=True)
        sock = str(base / "notify.sock")
        timed_start(inst, sock, f"{args.messages} in deferred/")
        n = move_all(inst, "deferred", "active")
        subprocess.run(["sync"], check=True)
        subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=False)
        timed_start(inst, sock, f"{n} in active/ (cold cache)")
        timed_start(inst, sock, f"{n} in incoming/ (warm cache)")
    finally:
        inst.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
