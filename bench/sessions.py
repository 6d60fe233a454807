"""sessions.py: memory of N concurrent SMTP sessions on one instance, postd beside Postfix (issue 19, item 3).

For each N (default 1,000 and 10,000) and each MTA (one Postfix 3.7 and one postd instance from bench.py's
setup, alternating, each started fresh in its own cgroup), an asyncio client opens N sessions to the one
instance (at most CONNECT_PARALLEL connecting at a time), reads the banner and sends EHLO; all N then idle.
Then M of them (a tenth) send MAIL, RCPT, DATA and the first 1 KiB of a message and stop there, inside
DATA. Summed over every process of the instance's cgroup, it prints RSS and PSS before, with N idle
sessions and with M in DATA, and the memory per idle session and per DATA session; then the M messages are
finished (each must get 250) and all sessions quit. Limits are raised for both so that N fits:
RLIMIT_NOFILE, Postfix's default_process_limit (one smtpd per session) and postd's (100 sessions per smtpd).
Every step has a deadline; a step that fails says which MTA and what it got. Not a test: run it through
`bench/run.sh sessions [-n 1000,10000]` (root).
"""
import argparse
import asyncio
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

CONNECT_PARALLEL = 200  # connects in flight: keeps the listen backlogs from overflowing into SYN retries
STEP_TIMEOUT = 600.0  # seconds for all sessions to connect, or to finish a step
SETTLE = 3.0  # seconds after a step before memory is read
MIN_MEM_AVAILABLE_KB = 6 << 20  # stop opening sessions when the machine has less than 6 GiB left (it is shared)
DATA_SHARE = 10  # one session in this many goes into DATA
HEAD = b"From: bench@example.org\r\nTo: sink@example.net\r\nSubject: sessions\r\n\r\n"
BODY_LINE = b"x" * 78 + b"\r\n"


def mem_available_kb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def cgroup_pids(mta):
    try:
        return [int(x) for x in (mta.cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return mta.pids()


def memory(mta):
    pids = cgroup_pids(mta)
    return {"rss_kb": sum(bench.status_kb(p, "VmRSS") for p in pids),
            "pss_kb": sum(bench.pss_kb(p) for p in pids), "procs": len(pids)}


class Session:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def reply(self):
        """The last line of one SMTP reply (multi-line replies read to their end)."""
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("connection closed")
            if line[3:4] != b"-":
                return line

    async def command(self, cmd, expect):
        self.writer.write(cmd + b"\r\n")
        line = await self.reply()
        if not line.startswith(expect):
            raise ConnectionError(f"{cmd.decode()}: {line.decode(errors='replace').strip()}")
        return line


async def open_session(port, gate):
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        s = Session(reader, writer)
        line = await s.reply()
        if not line.startswith(b"220"):
            raise ConnectionError(f"banner: {line.decode(errors='replace').strip()}")
        await s.command(b"EHLO client.example.org", b"250")
        return s


async def enter_data(s):
    await s.command(b"MAIL FROM:<bench@example.org>", b"250")
    await s.command(b"RCPT TO:<sink@example.net>", b"250")
    await s.command(b"DATA", b"354")
    s.writer.write(HEAD + BODY_LINE * 12)  # about 1 KiB, then the session waits inside DATA
    await s.writer.drain()


async def finish_data(s):
    s.writer.write(BODY_LINE + b".\r\n")
    line = await s.reply()
    if not line.startswith(b"250"):
        raise ConnectionError(f"end of DATA: {line.decode(errors='replace').strip()}")


async def quit_session(s):
    try:
        s.writer.write(b"QUIT\r\n")
        await asyncio.wait_for(s.reply(), 30)
    except (OSError, ConnectionError, asyncio.TimeoutError):
        pass
    s.writer.close()


async def gather_bounded(coros, what, mta):
    """Run coros with a deadline; return results, raise naming the MTA and the first failure."""
    try:
        res = await asyncio.wait_for(asyncio.gather(*coros, return_exceptions=True), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        raise bench.BenchError(f"{mta.name}: {what} did not finish in {STEP_TIMEOUT:.0f}s\n{mta.log_tail()}")
    errors = [r for r in res if isinstance(r, BaseException)]
    return [r for r in res if not isinstance(r, BaseException)], errors


async def load(mta, n):
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    base = memory(mta)
    t0 = time.monotonic()
    sessions, errors = [], []
    for start in range(0, n, 500):  # in slices, so that a machine short of memory stops the ramp
        if mem_available_kb() < MIN_MEM_AVAILABLE_KB:
            print(f"  {mta.name}: stopped opening sessions at {len(sessions)}: under "
                  f"{MIN_MEM_AVAILABLE_KB >> 20} GiB of memory left", flush=True)
            break
        ok, err = await gather_bounded([open_session(mta.port, gate) for _ in range(min(500, n - start))],
                                       "opening sessions", mta)
        sessions += ok
        errors += err
    t_conn = time.monotonic() - t0
    if errors:
        print(f"  {mta.name}: {len(errors)} of {n} sessions failed to open; first: {errors[0]!r}", flush=True)
    await asyncio.sleep(SETTLE)
    idle = memory(mta)
    m = max(1, len(sessions) // DATA_SHARE)
    active = sessions[:m]
    _ok, err = await gather_bounded([enter_data(s) for s in active], "entering DATA", mta)
    if err:
        raise bench.BenchError(f"{mta.name}: {len(err)} of {m} sessions failed before DATA; first: {err[0]!r}\n"
                               f"{mta.log_tail()}")
    await asyncio.sleep(SETTLE)
    data = memory(mta)
    t1 = time.monotonic()
    _ok, err = await gather_bounded([finish_data(s) for s in active], "finishing DATA", mta)
    t_data = time.monotonic() - t1
    if err:
        raise bench.BenchError(f"{mta.name}: {len(err)} of {m} messages not accepted; first: {err[0]!r}\n"
                               f"{mta.log_tail()}")
    await gather_bounded([quit_session(s) for s in sessions], "quitting", mta)
    return {"sessions": len(sessions), "failed": len(errors), "data_sessions": m, "connect_s": t_conn,
            "finish_data_s": t_data, "base": base, "idle": idle, "data": data}


def configure(mta, n):
    """Limits for n sessions: Postfix runs one smtpd per session (and one cleanup per session in DATA),
    postd one smtpd per 100 sessions; default_process_limit bounds both."""
    limit = n + 100 if isinstance(mta, bench.Postfix) else n // 100 + 100
    main_cf = mta.etc / "main.cf"
    text = main_cf.read_text()
    text = "".join(l + "\n" for l in text.splitlines() if not l.startswith("default_process_limit"))
    main_cf.write_text(text + f"default_process_limit = {limit}\nsmtpd_timeout = 900s\n")


def raise_nofile(n):
    """The client holds n sockets: the soft limit goes up to the hard one (which this machine's container does
    not let even root raise)."""
    want = n + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 64:
        raise bench.BenchError(f"RLIMIT_NOFILE hard limit {hard} is too low for {n} sessions; raise it "
                               f"(ulimit -Hn, or LimitNOFILE= of the service running this) and retry")
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def mib(kb):
    return kb / 1024


def report(mta, n, r):
    s, m = r["sessions"], r["data_sessions"]
    per_idle = (r["idle"]["rss_kb"] - r["base"]["rss_kb"]) / max(1, s)
    per_idle_pss = (r["idle"]["pss_kb"] - r["base"]["pss_kb"]) / max(1, s)
    per_data = (r["data"]["rss_kb"] - r["idle"]["rss_kb"]) / m
    per_data_pss = (r["data"]["pss_kb"] - r["idle"]["pss_kb"]) / m
    print(f"  {mta.name:8} N={n}: {s} open in {r['connect_s']:.1f} s ({r['failed']} failed); "
          f"RSS/PSS MiB: before {mib(r['base']['rss_kb']):.1f}/{mib(r['base']['pss_kb']):.1f} "
          f"({r['base']['procs']} procs), {s} idle {mib(r['idle']['rss_kb']):.1f}/{mib(r['idle']['pss_kb']):.1f} "
          f"({r['idle']['procs']} procs), {m} in DATA {mib(r['data']['rss_kb']):.1f}/"
          f"{mib(r['data']['pss_kb']):.1f} ({r['data']['procs']} procs); per idle session "
          f"{per_idle:.0f}/{per_idle_pss:.0f} KiB, per DATA session {per_data:.0f}/{per_data_pss:.0f} KiB; "
          f"{m} messages finished in {r['finish_data_s']:.1f} s", flush=True)
    return {"per_idle_rss_kib": per_idle, "per_idle_pss_kib": per_idle_pss, "per_data_rss_kib": per_data,
            "per_data_pss_kib": per_data_pss, "idle_rss_mib": mib(r["idle"]["rss_kb"]),
            "idle_pss_mib": mib(r["idle"]["pss_kb"]), "data_rss_mib": mib(r["data"]["rss_kb"]),
            "data_pss_mib": mib(r["data"]["pss_kb"]), "connect_s": r["connect_s"], "procs": r["data"]["procs"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--sessions", default="1000,10000", help="comma-separated session counts")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("sessions.py: run as root (bench/run.sh sessions)")
    counts = [int(x) for x in args.sessions.split(",")]
    if not all(1 <= n <= 50000 for n in counts):
        sys.exit("sessions.py: session counts between 1 and 50000")
    raise_nofile(max(counts))
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-sessions-", dir="/tmp"))
    os.chmod(base, 0o755)
    sink = None
    mtas = []
    table = {}
    meta = bench.versions()
    try:
        sink_port = bench.free_port()
        sink = subprocess.Popen([bench.SMTP_SINK, "-u", "nobody", f"127.0.0.1:{sink_port}", "1024"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_until(lambda: bench.port_answers(sink_port), 10, "smtp-sink")
        mtas = [bench.Postfix(base / "postfix", sink_port), bench.Postd(base / "postd", sink_port)]
        print(f"sessions: {meta['date']}; {meta['machine']}; Postfix {meta['postfix']} vs postd {meta['postd']}",
              flush=True)
        with bench.DefaultMainCf(mtas[0].etc):
            for n in counts:
                for mta in mtas:
                    configure(mta, n)
                    mta.start()
                    try:
                        time.sleep(bench.SETTLE_SECONDS)
                        print(f"  {mta.name}: background {bench.wait_quiet():.2f} CPU", flush=True)
                        table[(n, mta.name)] = report(mta, n, asyncio.run(load(mta, n)))
                    finally:
                        mta.stop()
        print_table(counts, table, meta)
    finally:
        for mta in mtas:
            mta.remove_cgroup()
        if sink:
            sink.terminate()
            sink.wait(10)
        if not bench.KEEP:
            subprocess.run(["rm", "-rf", str(base)])


def print_table(counts, table, meta):
    rows = [("per idle session, RSS KiB", "per_idle_rss_kib"), ("per idle session, PSS KiB", "per_idle_pss_kib"),
            ("per DATA session, RSS KiB", "per_data_rss_kib"), ("per DATA session, PSS KiB", "per_data_pss_kib"),
            ("all idle, RSS MiB", "idle_rss_mib"), ("all idle, PSS MiB", "idle_pss_mib"),
            ("a tenth in DATA, RSS MiB", "data_rss_mib"), ("a tenth in DATA, PSS MiB", "data_pss_mib"),
            ("processes", "procs"), ("time to open all, s", "connect_s")]
    print(f"\n{meta['date']}; {meta['machine']}")
    print(f"| {'sessions':>8} | {'metric':28} | {'Postfix':>9} | {'postd':>9} | {'postd/Postfix':>13} |")
    print(f"|{'-' * 9}:|{'-' * 30}|{'-' * 10}:|{'-' * 10}:|{'-' * 14}:|")
    for n in counts:
        pf, pd = table.get((n, "Postfix")), table.get((n, "postd"))
        if not pf or not pd:
            continue
        for title, key in rows:
            ratio = pd[key] / pf[key] if pf[key] else float("nan")
            print(f"| {n:>8,} | {title:28} | {bench.fmt(pf[key]):>9} | {bench.fmt(pd[key]):>9} | {ratio:>13.2f} |")


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        print(f"sessions: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
