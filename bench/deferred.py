"""deferred.py: a 100,000-message deferred queue, postd beside Postfix (issue 19, item 4).

One Postfix 3.7 and one postd instance (bench.py's setup, each in its own cgroup), both with retries
pushed an hour away (queue_run_delay, minimal_backoff_time) so that nothing moves while it measures:
  - Postfix's deferred queue is made the way Postfix makes one: smtp-source injects N 1 KiB messages over
    SMTP into the instance with `defer_transports = smtp`, and its qmgr defers each (deferred/ plus the
    defer/ reason log), at the rate Postfix accepts;
  - postd's is written by postd's bench/fill_deferred.c (real queue files of postd's format, put in
    deferred/ with their retry time an hour away; no defer reason, which postd's listing does not read).
With the instance running, it times `postqueue -p` and `postqueue -j` (3 runs each, page cache warm; the
median, plus the time to the first byte of output and the client's peak RSS: a streaming listing starts at
once and stays small), checks that every message is listed, then stops the instance and times a start with
the full deferred queue: `postfix start` until the SMTP port listens, and for postd until READY=1 on a
NOTIFY_SOCKET it owns (Postfix 3.7's master sends no sd_notify). Every wait has a deadline. Not a test:
run it through `bench/run.sh deferred [-n 100000]` (root).
"""
import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

NO_RETRY = "queue_run_delay = 3600s\nminimal_backoff_time = 3600s\nmaximal_backoff_time = 7200s\n"
FILL_TIMEOUT = 1800.0  # seconds for N messages to reach deferred/
LIST_TIMEOUT = 300.0
LIST_RUNS = 3
READY_TIMEOUT = 300.0
TIME_CMD = "/usr/bin/time"  # GNU time: the client's peak RSS


def count_deferred(mta):
    n = 0
    for _d, _s, files in os.walk(mta.spool / "deferred"):
        n += len(files)
    return n


def fill_postfix(mta, n):
    """N messages over SMTP; Postfix's qmgr defers them (defer_transports = smtp)."""
    t0 = time.monotonic()
    src = subprocess.run([bench.SMTP_SOURCE, "-s", "50", "-m", str(n), "-l", "1024", "-f", "bench@example.org",
                          "-t", "sink@example.net", f"127.0.0.1:{mta.port}"], capture_output=True, text=True,
                         timeout=FILL_TIMEOUT)
    if src.returncode != 0:
        raise bench.BenchError(f"Postfix: smtp-source failed: {src.stderr[:2000]}\n{mta.log_tail()}")
    deadline = t0 + FILL_TIMEOUT
    while count_deferred(mta) < n or mta.queued() > n:
        if time.monotonic() > deadline:
            raise bench.BenchError(f"Postfix: {count_deferred(mta)} of {n} deferred after {FILL_TIMEOUT:.0f}s")
        time.sleep(0.5)
    return time.monotonic() - t0


def fill_postd(mta, n):
    """N queue files straight into deferred/ with postd's bench tool (the instance stopped)."""
    t0 = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
    r = subprocess.run([str(bench.POSTD_BIN.parent / "bench" / "fill_deferred"), "-c", str(mta.etc), "-n", str(n),
                        "-r", "sink@example.net", "-f", "bench@example.org"], capture_output=True, text=True,
                       env=env, timeout=FILL_TIMEOUT)
    if r.returncode != 0:
        raise bench.BenchError(f"postd: fill_deferred failed: {r.stderr.strip()}")
    return time.monotonic() - t0


def postqueue(mta, flag):
    """One `postqueue FLAG` run: (seconds, seconds to first byte, lines, client peak RSS KiB)."""
    cmd = "/usr/sbin/postqueue" if isinstance(mta, bench.Postfix) else str(bench.POSTD_BIN / "postqueue")
    env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
    rss_file = mta.root / "postqueue.maxrss"
    t0 = time.monotonic()
    # GNU time forks the client from its own small process: a fork of this Python process would count
    # Python's pages in the client's peak RSS.
    p = subprocess.Popen([TIME_CMD, "-f", "%M", "-o", str(rss_file), cmd, "-c", str(mta.etc), flag],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = None
    lines = 0
    deadline = t0 + LIST_TIMEOUT
    while True:
        chunk = p.stdout.read1(1 << 16)
        if not chunk:
            break
        if first is None:
            first = time.monotonic() - t0
        lines += chunk.count(b"\n")
        if time.monotonic() > deadline:
            p.kill()
            raise bench.BenchError(f"{mta.name}: postqueue {flag} ran over {LIST_TIMEOUT:.0f}s")
    status = p.wait(LIST_TIMEOUT)
    took = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    if status != 0:
        raise bench.BenchError(f"{mta.name}: postqueue {flag} failed: {err.strip()}")
    return took, first or took, lines, int(rss_file.read_text().split()[-1])


def time_start(mta):
    """`postfix start` until the port listens, and (postd) until READY=1."""
    sock_path = str(mta.root / "notify.sock")
    note = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    note.bind(sock_path)
    os.chmod(sock_path, 0o777)
    saved = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = sock_path
    ready = None
    try:
        t0 = time.monotonic()
        mta.start()  # returns once the port listens
        listening = time.monotonic() - t0
        if isinstance(mta, bench.Postd):
            deadline = t0 + READY_TIMEOUT
            while ready is None and time.monotonic() < deadline:
                note.settimeout(1.0)
                try:
                    data = note.recv(4096).decode(errors="replace")
                except socket.timeout:
                    continue
                if "READY=1" in data.split("\n"):
                    ready = time.monotonic() - t0
    finally:
        if saved is None:
            os.environ.pop("NOTIFY_SOCKET", None)
        else:
            os.environ["NOTIFY_SOCKET"] = saved
        note.close()
        os.unlink(sock_path)
    return listening, ready


def measure(mta, n, fill):
    """Fill, list, restart; the instance runs while listing."""
    if isinstance(mta, bench.Postd):
        mta.start()  # makes the queue layout
        mta.stop()
        fill_s = fill(mta, n)
        mta.start()
    else:
        mta.start()
        fill_s = fill(mta, n)
    got = count_deferred(mta)
    if got != n:
        raise bench.BenchError(f"{mta.name}: {got} messages in deferred/, expected {n}")
    print(f"  {mta.name}: {n} deferred in {fill_s:.0f} s", flush=True)
    out = {"fill_s": fill_s}
    os.sync()
    for flag in ("-p", "-j"):
        runs = [postqueue(mta, flag) for _ in range(LIST_RUNS)]
        lines = runs[-1][2]
        want = n if flag == "-j" else n * 3  # -j: one line per message; -p: three at least
        if lines < want:
            raise bench.BenchError(f"{mta.name}: postqueue {flag} printed {lines} lines for {n} messages")
        out[flag] = {"s": statistics.median(r[0] for r in runs), "first_s": statistics.median(r[1] for r in runs),
                     "lines": lines, "maxrss_kib": max(r[3] for r in runs)}
        print(f"  {mta.name}: postqueue {flag}: {', '.join(f'{r[0]:.2f}' for r in runs)} s (first byte "
              f"{out[flag]['first_s'] * 1000:.0f} ms, {lines} lines, client peak RSS "
              f"{out[flag]['maxrss_kib'] / 1024:.1f} MiB)", flush=True)
    mta.stop()
    listening, ready = time_start(mta)
    out["listening_s"], out["ready_s"] = listening, ready
    print(f"  {mta.name}: start with {n} deferred: listening after {listening:.2f} s"
          + (f", READY=1 after {ready:.2f} s" if ready is not None else ""), flush=True)
    mta.stop()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--messages", type=int, default=100000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("deferred.py: run as root (bench/run.sh deferred)")
    if not 1 <= args.messages <= 1_000_000:
        sys.exit("deferred.py: -n between 1 and 1000000")
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-deferred-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    mtas = []
    meta = bench.versions()
    res = {}
    try:
        dead_port = bench.free_port()  # nothing listens there: nothing is delivered either way
        pf = bench.Postfix(base / "postfix", dead_port)
        pd = bench.Postd(base / "postd", dead_port)
        mtas = [pf, pd]
        with open(pf.etc / "main.cf", "a") as f:
            f.write(NO_RETRY + "defer_transports = smtp\n")
        with open(pd.etc / "main.cf", "a") as f:
            f.write(NO_RETRY)
        print(f"deferred: {meta['date']}; {meta['machine']}; Postfix {meta['postfix']} vs postd {meta['postd']}; "
              f"{args.messages} messages; queues under {base}", flush=True)
        with bench.DefaultMainCf(pf.etc):
            res["Postfix"] = measure(pf, args.messages, fill_postfix)
            res["postd"] = measure(pd, args.messages, fill_postd)
        print_table(args.messages, res, meta)
    finally:
        for mta in mtas:
            mta.stop()
            mta.remove_cgroup()
        if not bench.KEEP:
            subprocess.run(["rm", "-rf", str(base)])


def print_table(n, res, meta):
    pf, pd = res["Postfix"], res["postd"]
    rows = [("postqueue -p, s", pf["-p"]["s"], pd["-p"]["s"]),
            ("postqueue -p, first byte ms", pf["-p"]["first_s"] * 1000, pd["-p"]["first_s"] * 1000),
            ("postqueue -p, client RSS MiB", pf["-p"]["maxrss_kib"] / 1024, pd["-p"]["maxrss_kib"] / 1024),
            ("postqueue -j, s", pf["-j"]["s"], pd["-j"]["s"]),
            ("postqueue -j, first byte ms", pf["-j"]["first_s"] * 1000, pd["-j"]["first_s"] * 1000),
            ("postqueue -j, client RSS MiB", pf["-j"]["maxrss_kib"] / 1024, pd["-j"]["maxrss_kib"] / 1024),
            ("start to port listening, s", pf["listening_s"], pd["listening_s"])]
    print(f"\n{n:,} deferred 1 KiB messages; {meta['date']}; {meta['machine']}")
    print(f"| {'metric':30} | {'Postfix':>9} | {'postd':>9} | {'postd/Postfix':>13} |")
    print(f"|{'-' * 32}|{'-' * 10}:|{'-' * 10}:|{'-' * 14}:|")
    for title, a, b in rows:
        print(f"| {title:30} | {bench.fmt(a):>9} | {bench.fmt(b):>9} | {b / a if a else float('nan'):>13.2f} |")
    ready = pd["ready_s"]
    print(f"| {'start to READY=1, s':30} | {'(none)':>9} | {bench.fmt(ready) if ready is not None else '?':>9} | "
          f"{'':>13} |")


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        print(f"deferred: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
