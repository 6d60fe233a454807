"""profile_one.py: where one session's 1 KiB message spends its time, postd beside Postfix (issue 19, item 2).

For each MTA (bench.py's setup, own cgroup, relaying to one smtp-sink), three runs of `smtp-source -s 1 -m N
-l 1024`, each on a freshly started instance:
  1. counted: perf stat -a -G CGROUP (CPU time, context switches, syscalls, fsync-type calls, wakeups of
     the instance's processes), the plain rate with the least disturbance;
  2. strace -f -c -w attached to every process of the instance (and so to every daemon it forks after):
     wall time and count per syscall, to see how long the fsyncs block;
  3. perf record -a -g -G CGROUP: call graphs, reported per command and symbol.
The raw outputs go to OUTDIR (default /tmp/postd-profile-DATE); the summary is printed. Not a test: run
through `bench/run.sh profile [-m 2000] [-o OUTDIR]` (root).
"""
import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

STAT_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "raw_syscalls:sys_enter",
               "sched:sched_wakeup", "syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync")
RUN_TIMEOUT = 600


def smtp_source(mta, n):
    t0 = time.monotonic()
    r = subprocess.run([bench.SMTP_SOURCE, "-s", "1", "-m", str(n), "-l", "1024", "-f", "bench@example.org",
                        "-t", "sink@example.net", f"127.0.0.1:{mta.port}"], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise bench.BenchError(f"{mta.name}: smtp-source failed: {r.stderr[:1000]}\n{mta.log_tail()}")
    return took


def wait_delivered(mta):
    deadline = time.monotonic() + RUN_TIMEOUT
    while mta.queued():
        if time.monotonic() > deadline:
            raise bench.BenchError(f"{mta.name}: queue not empty after {RUN_TIMEOUT}s\n{mta.log_tail()}")
        time.sleep(0.1)


def stop_tool(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def counted(mta, n, out):
    cg = mta.cgroup_rel()
    f = out / f"{mta.name}-stat.csv"
    p = subprocess.Popen(["perf", "stat", "-x", ",", "-o", str(f), "-a", "-e", ",".join(STAT_EVENTS),
                          "-G", ",".join([cg] * len(STAT_EVENTS))], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    took = smtp_source(mta, n)
    wait_delivered(mta)
    stop_tool(p)
    counts = {}
    for line in f.read_text().splitlines():
        x = line.split(",")
        if len(x) > 3 and x[0].replace(".", "").isdigit():
            counts[x[2]] = float(x[0])
    return took, counts


def straced(mta, n, out):
    pids = [int(x) for x in (mta.cgroup / "cgroup.procs").read_text().split()]
    f = out / f"{mta.name}-strace.txt"
    argv = ["strace", "-f", "-c", "-w", "-S", "time", "-o", str(f)]
    for pid in pids:
        argv += ["-p", str(pid)]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    took = smtp_source(mta, n)
    wait_delivered(mta)
    stop_tool(p)
    return took


def recorded(mta, n, out):
    data = out / f"{mta.name}-perf.data"
    # cpu-clock: this VM has no hardware cycle counter; -G needs an explicit event before it.
    p = subprocess.Popen(["perf", "record", "-q", "-a", "-g", "-F", "999", "-e", "cpu-clock", "-G", mta.cgroup_rel(),
                          "-o", str(data)], stdout=subprocess.DEVNULL, stderr=open(out / f"{mta.name}-perf.log", "w"))
    time.sleep(0.5)
    took = smtp_source(mta, n)
    wait_delivered(mta)
    stop_tool(p)
    for name, sort in (("comm", "comm"), ("sym", "comm,dso,sym")):
        with open(out / f"{mta.name}-report-{name}.txt", "w") as fo:
            subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio",
                            "-g", "none", "--percent-limit", "0.3"], stdout=fo, stderr=subprocess.DEVNULL,
                           timeout=600)
    return took


def fresh(mta, fn, *args):
    mta.start()
    try:
        time.sleep(bench.SETTLE_SECONDS)
        bench.wait_quiet()
        return fn(mta, *args)
    finally:
        mta.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--messages", type=int, default=2000)
    ap.add_argument("-o", "--outdir", default=f"/tmp/postd-profile-{time.strftime('%Y%m%d-%H%M')}")
    args = ap.parse_args()
    out = pathlib.Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-profile-", dir="/tmp"))
    os.chmod(base, 0o755)
    meta = bench.versions()
    n = args.messages
    sink = None
    mtas = []
    try:
        sink_port = bench.free_port()
        sink = subprocess.Popen([bench.SMTP_SINK, "-u", "nobody", f"127.0.0.1:{sink_port}", "1024"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_until(lambda: bench.port_answers(sink_port), 10, "smtp-sink")
        mtas = [bench.Postfix(base / "postfix", sink_port), bench.Postd(base / "postd", sink_port)]
        print(f"profile: {meta['date']}; {meta['machine']}; Postfix {meta['postfix']} vs postd {meta['postd']}; "
              f"1 session x {n} x 1 KiB; raw output in {out}", flush=True)
        with bench.DefaultMainCf(mtas[0].etc):
            for mta in mtas:
                took, c = fresh(mta, counted, n, out)
                per = {k: v / n for k, v in c.items()}
                print(f"  {mta.name:8} counted: {n / took:.0f} msg/s ({took * 1000 / n:.2f} ms/msg); per message: "
                      f"CPU {per.get('task-clock', 0):.2f} ms, {per.get('context-switches', 0):.1f} context "
                      f"switches, {per.get('sched:sched_wakeup', 0):.1f} wakeups, "
                      f"{per.get('raw_syscalls:sys_enter', 0):.0f} syscalls, "
                      f"{per.get('syscalls:sys_enter_fsync', 0):.2f} fsync, "
                      f"{per.get('syscalls:sys_enter_fdatasync', 0):.2f} fdatasync", flush=True)
            for mta in mtas:
                took = fresh(mta, straced, n, out)
                print(f"  {mta.name:8} under strace: {n / took:.0f} msg/s; summary in {out}/{mta.name}-strace.txt",
                      flush=True)
            for mta in mtas:
                took = fresh(mta, recorded, n, out)
                print(f"  {mta.name:8} under perf record: {n / took:.0f} msg/s; reports in "
                      f"{out}/{mta.name}-report-*.txt", flush=True)
    finally:
        for mta in mtas:
            mta.stop()
            mta.remove_cgroup()
        if sink:
            sink.terminate()
            sink.wait(10)
        subprocess.run(["rm", "-rf", str(base)])


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        print(f"profile: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
