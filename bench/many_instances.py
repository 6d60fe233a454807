#!/usr/bin/python3
"""many_instances.py: N postd instances on one host (issue 19, item 5): time until every one answers
its SMTP port after all are started at once, and their summed idle memory.

Each instance is a tests/integration/mailinstance.py instance (own config, queue, data directories and
127.0.0.1 port; Debian's defaults otherwise). All N masters are started concurrently with `postfix start`;
the script waits (bounded) until every port sends a 220 banner, then lets them idle and sums VmRSS and
PSS (/proc/PID/smaps_rollup) over every process of every instance. Not a test: the figures go in the
report. Run as root from the repository (uses build/ or $POSTD_BUILD_DIR):

    bench/many_instances.py [-n 50] [--idle 5]
"""
import argparse
import os
import pathlib
import socket
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("POSTD_BUILD_DIR", str(ROOT / "build"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from mailinstance import MailInstance  # noqa: E402

START_DEADLINE = 120.0  # seconds for all instances to answer


def banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(100).startswith(b"220")
    except OSError:
        return False


def instance_pids(inst):
    """Every process whose command line names the instance's config directory (master and daemons)."""
    etc = str(inst.etc).encode()
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if etc in (d / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def kib(pid, path, field):
    try:
        for line in (pathlib.Path(f"/proc/{pid}") / path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--instances", type=int, default=50)
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idling before memory is summed")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("many_instances.py: run as root (instances chown their directories to mail_owner)")
    if not 1 <= args.instances <= 500:
        sys.exit("many_instances.py: -n between 1 and 500")
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-many-", dir="/tmp"))
    os.chmod(base, 0o755)
    insts = [MailInstance(base / f"i{k}", name=f"postfix-b{k}") for k in range(args.instances)]
    print(f"build {os.environ['POSTD_BUILD_DIR']}; {args.instances} instances")
    try:
        t0 = time.monotonic()
        threads = [threading.Thread(target=inst.start) for inst in insts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(START_DEADLINE)
        waiting = list(insts)
        while waiting and time.monotonic() - t0 < START_DEADLINE:
            waiting = [i for i in waiting if not banner(i.port)]
            if waiting:
                time.sleep(0.05)
        elapsed = time.monotonic() - t0
        if waiting:
            print(f"{len(waiting)} instances did not answer within {START_DEADLINE:.0f} s")
        print(f"all started and answering 220: {elapsed:.2f} s")
        time.sleep(args.idle)
        pids = [p for inst in insts for p in instance_pids(inst)]
        rss = sum(kib(p, "status", "VmRSS") for p in pids)
        pss = sum(kib(p, "smaps_rollup", "Pss") for p in pids)
        print(f"idle after {args.idle:.0f} s: {len(pids)} processes, summed RSS {rss / 1024:.1f} MiB, "
              f"summed PSS {pss / 1024:.1f} MiB ({rss / 1024 / args.instances:.2f} MiB RSS per instance)")
    finally:
        for inst in insts:
            try:
                inst.stop()
            except Exception as e:  # keep stopping the others
                print(f"stop {inst.name}: {e}")
        if not os.environ.get("BENCH_KEEP"):
            os.system(f"rm -rf {base}")


if __name__ == "__main__":
    main()
