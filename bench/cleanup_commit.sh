#!/bin/sh
# cleanup_commit.sh: measure cleanup's group commit: N submissions from C concurrent clients, fsyncs counted.
#
# Usage: bench/cleanup_commit.sh [BUILD_DIR [N [C]]]   (as root; needs strace; default build, 2000, 20)
# Starts a throwaway instance whose master.cf has only cleanup, attaches `strace -c -f -e fsync,fdatasync`
# to the cleanup process, submits N messages of 1 KiB through the submission protocol and prints the
# message rate and the syscall summary: one fdatasync per message, and (the group commit) far fewer
# directory fsyncs than messages. Timing is printed, never asserted.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
n=${2:-2000}
c=${3:-20}
command -v strace >/dev/null || { echo "cleanup_commit.sh: strace is not installed" >&2; exit 1; }

POSTD_BUILD_DIR=$build PYTHONPATH=$here/tests/integration N=$n C=$c /usr/bin/python3 - <<'PY'
import os, pathlib, shutil, signal, subprocess, sys, tempfile, threading, time
from mailinstance import MailInstance, wait_for
from mailproto import submit

n, c = int(os.environ["N"]), int(os.environ["C"])
base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-", dir="/tmp"))
os.chmod(base, 0o755)
os.environ.pop("INVOCATION_ID", None)
os.environ.pop("JOURNAL_STREAM", None)
inst = MailInstance(base / "inst", "postfix-bench",
                    master_cf="cleanup   unix  n       -       n       -       0       cleanup\n",
                    main_extra="max_use = 1000000\n")
strace = None
try:
    inst.start()
    sock = wait_for(lambda: next((p for p in (inst.spool / "private" / "cleanup",
                                              inst.spool / "public" / "cleanup") if p.exists()), None),
                    10, "the cleanup socket")
    body = b"Subject: bench\n\n" + (b"x" * 63 + b"\n") * 16
    assert submit(sock, "bench@example.org", ["user@example.test"], body)[0] == 0
    master = inst.master_pid()
    kids = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(master)], capture_output=True,
                          text=True).stdout.split("\n")
    pid = next(int(l.split()[0]) for l in kids if l.strip().endswith("cleanup"))
    out = base / "strace.txt"
    strace = subprocess.Popen(["strace", "-c", "-f", "-e", "trace=fsync,fdatasync", "-p", str(pid),
                               "-o", str(out)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    failures = []
    def worker(k):
        for i in range(k, n, c):
            st, why = submit(sock, f"s{i}@example.org", [f"u{i}@example.test"], body)
            if st != 0:
                failures.append(why)
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(c)]
    for t in threads: t.start()
    for t in threads: t.join()
    dt = time.monotonic() - t0
    strace.send_signal(signal.SIGINT)
    strace.wait(10)
    strace = None
    print(f"{n} messages, {c} clients: {dt:.2f} s, {n / dt:.0f} msg/s (under strace), {len(failures)} failed")
    print(out.read_text())
finally:
    if strace:
        strace.kill()
    inst.stop()
    shutil.rmtree(base, ignore_errors=True)
PY
