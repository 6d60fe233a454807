"""phases.py: where one session's message spends its time, step by step, postd beside Postfix (issue 19, item 2).

One SMTP client (this script, on 127.0.0.1) sends N messages of 1 KiB, each on a new connection as
smtp-source -s 1 does, and times every step from its command to the last line of the answer: connect to
banner, EHLO, MAIL, RCPT, DATA (to the 354), the message with its final dot (to the 250: cleanup's durable
commit), QUIT. Both MTAs relay to one smtp-sink, so the previous message's delivery runs beside the next
one's reception as in the throughput runs. Runs alternate Postfix, postd, Postfix, postd (bench.py's setup,
each on a freshly started instance); the table shows per-step medians over all rounds and the ratio.
Not a test: `bench/run.sh phases [-n 500] [-r 2]` (root).
"""
import argparse
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

STEPS = ("connect+banner", "EHLO", "MAIL", "RCPT", "DATA", "message+dot", "QUIT")
BODY = (b"From: <bench@example.org>\r\nTo: <sink@example.net>\r\nSubject: phases\r\n\r\n"
        + b"x" * 76 + b"\r\n") + b"y" * 900 + b"\r\n.\r\n"
IO_TIMEOUT = 60.0


def read_reply(f, step):
    """The last line of a (multi-line) reply; fails on EOF or a code other than 2xx/354."""
    for _ in range(100):  # bounded: no reply here has more lines
        line = f.readline()
        if not line:
            raise bench.BenchError(f"connection closed during {step}")
        if line[3:4] != b"-":
            if not (line.startswith(b"2") or line.startswith(b"354")):
                raise bench.BenchError(f"{step}: {line.decode(errors='replace').strip()}")
            return line
    raise bench.BenchError(f"{step}: reply of more than 100 lines")


def one_message(port, times):
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as s:
        f = s.makefile("rb")
        read_reply(f, "banner")
        times["connect+banner"].append(time.perf_counter() - t0)
        for step, data in (("EHLO", b"EHLO client.example\r\n"), ("MAIL", b"MAIL FROM:<bench@example.org>\r\n"),
                           ("RCPT", b"RCPT TO:<sink@example.net>\r\n"), ("DATA", b"DATA\r\n"),
                           ("message+dot", BODY), ("QUIT", b"QUIT\r\n")):
            t = time.perf_counter()
            s.sendall(data)
            read_reply(f, step)
            times[step].append(time.perf_counter() - t)


def run(mta, n, times):
    mta.start()
    try:
        bench.wait_until(lambda: bench.port_answers(mta.port), bench.START_TIMEOUT, f"{mta.name} to answer")
        for _ in range(min(20, n)):  # warm-up: every daemon started, caches filled; not counted
            one_message(mta.port, {k: [] for k in STEPS})
        t = time.perf_counter()
        for _ in range(n):
            one_message(mta.port, times)
        took = time.perf_counter() - t
        deadline = time.monotonic() + 300
        while mta.queued():
            if time.monotonic() > deadline:
                raise bench.BenchError(f"{mta.name}: queue not empty after 300 s\n{mta.log_tail()}")
            time.sleep(0.1)
    finally:
        mta.stop()
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=500, help="messages per round and MTA (default 500)")
    ap.add_argument("-r", type=int, default=2, help="rounds (default 2)")
    args = ap.parse_args()
    if not 1 <= args.n <= 100000 or not 1 <= args.r <= 20:
        raise bench.BenchError("-n must be 1..100000 and -r 1..20")
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-phases-", dir="/tmp"))
    os.chmod(base, 0o755)
    sink = None
    mtas = []
    try:
        sink_port = bench.free_port()
        sink = subprocess.Popen([bench.SMTP_SINK, "-u", "nobody", f"127.0.0.1:{sink_port}", "1024"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_until(lambda: sink.poll() is not None or bench.port_answers(sink_port), 10, "smtp-sink")
        mtas = [bench.Postfix(base / "postfix", sink_port), bench.Postd(base / "postd", sink_port)]
        meta = bench.versions()
        times = {m.name: {k: [] for k in STEPS} for m in mtas}
        with bench.DefaultMainCf(mtas[0].etc):
            print(f"phases: {meta['date']}; {meta['machine']}", flush=True)
            print(f"phases: Postfix {meta['postfix']} vs postd {meta['postd']}; {args.r} rounds of {args.n} "
                  "messages, alternating", flush=True)
            for rnd in range(args.r):
                for mta in mtas:
                    took = run(mta, args.n, times[mta.name])
                    print(f"  round {rnd + 1} {mta.name:8} {args.n / took:.0f} msg/s accepted, one after the "
                          "other", flush=True)
        print()
        print(f"| step (median, ms)  | {'Postfix':>8} | {'postd':>8} | Postfix/postd |")
        print(f"|{'-' * 20}|{'-' * 9}:|{'-' * 9}:|{'-' * 14}:|")
        total = {}
        for step in STEPS:
            row = [statistics.median(times[m.name][step]) * 1000 for m in mtas]
            for m, v in zip(mtas, row):
                total[m.name] = total.get(m.name, 0) + v
            print(f"| {step:18} | {row[0]:8.3f} | {row[1]:8.3f} | {row[0] / row[1]:13.2f} |")
        pf, pd = total["Postfix"], total["postd"]
        print(f"| {'sum of medians':18} | {pf:8.3f} | {pd:8.3f} | {pf / pd:13.2f} |")
        # The mean per message takes the rare slow steps (a process started, a cache refilled) into account.
        mean = [sum(statistics.fmean(times[m.name][k]) for k in STEPS) * 1000 for m in mtas]
        print(f"| {'mean per message':18} | {mean[0]:8.3f} | {mean[1]:8.3f} | {mean[0] / mean[1]:13.2f} |")
    finally:
        for mta in mtas:
            mta.stop()
            mta.remove_cgroup()
        if sink and sink.poll() is None:
            sink.terminate()
            try:
                sink.wait(10)
            except subprocess.TimeoutExpired:
                sink.kill()
        if bench.KEEP:
            print(f"phases: kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        print(f"phases: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
