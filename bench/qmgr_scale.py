"""qmgr_scale.py: does a big deferred queue slow new mail down? (issue 4: 100 000 deferred messages).

Runs one instance relaying to smtp-sink (or a Python sink when smtp-sink is unavailable), measures new
mail with an empty queue, then again with N messages in deferred/ (written by fill_deferred, not due
for an hour, as after an outage), and prints both with their ratio: end-to-end msg/s, latency from
smtpd's 250 to the delivery's log line, qmgr's CPU time and RSS, and how long qmgr took to start.
Not a test: run it by hand through bench/qmgr_scale.sh.
"""
import argparse
import os
import pathlib
import re
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))
from mailinstance import DEFAULT_MASTER_CF, MailInstance, free_port, wait_for  # noqa: E402
from conftest import BIN  # noqa: E402

SINK_DIR = pathlib.Path("/opt/postfix-tools")
SENT_RX = re.compile(rb"([0-9A-F]{6,21}): to=<[^>]*>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, "
                     rb"delay=[0-9.]+, delays=([0-9.]+)/([0-9.]+)/[0-9.]+/[0-9.]+, .*status=sent")
TICKS = os.sysconf("SC_CLK_TCK")


def start_sink():
    """smtp-sink on a free port if it can be had, else the tests' Python peer."""
    port = free_port()
    r = subprocess.run([str(ROOT / "tests/integration/get-smtp-sink.sh")], capture_output=True, timeout=300)
    if r.returncode == 0:
        p = subprocess.Popen([str(SINK_DIR / "usr/sbin/smtp-sink"), "-u", "postfix", "-c",
                              f"127.0.0.1:{port}", "256"],
                             env={**os.environ, "LD_LIBRARY_PATH": str(SINK_DIR / "usr/lib/postfix")},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10, "smtp-sink")
        return port, "smtp-sink", p.terminate
    from smtp_peer import SmtpPeer
    peer = SmtpPeer(port=port)
    return port, "python sink", peer.close


class LogTail:
    """Sees each delivery's log line within a few ms: reads the maillog incrementally in a thread."""

    def __init__(self, path):
        self.path = path
        self.seen = {}
        self.qmgr_share = {}  # delays a+b: arrival to active, active to the agent (10 ms resolution)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        pos, rest = 0, b""
        while not self.stop:
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            now = time.monotonic()
            if data:
                pos += len(data)
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    m = SENT_RX.search(line)
                    if m:
                        self.seen.setdefault(m.group(1).decode(), now)
                        self.qmgr_share[m.group(1).decode()] = float(m.group(2)) + float(m.group(3))
            time.sleep(0.002)

    def close(self):
        self.stop = True
        self.thread.join(5)


def qmgr_stats(inst):
    """(CPU seconds, RSS KiB) of the instance's qmgr."""
    pids = inst.daemon_pids("qmgr")
    if not pids:
        return 0.0, 0
    stat = pathlib.Path(f"/proc/{pids[0]}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / TICKS
    rss = next(int(l.split()[1]) for l in pathlib.Path(f"/proc/{pids[0]}/status").read_text().splitlines()
               if l.startswith("VmRSS:"))
    return cpu, rss


def send(inst, n, sessions, accepted):
    """n messages over `sessions` parallel SMTP sessions; accepted[qid] = time of the 250."""
    def worker(k):
        c = smtplib.SMTP("127.0.0.1", inst.port, timeout=60)
        c.ehlo("bench.example")
        for i in range(k, n, sessions):
            c.mail("bench@example.test")
            c.rcpt(f"rcpt{i}@sink.example")
            code, msg = c.data(f"From: <bench@example.test>\nSubject: bench {i}\n\n" + "x" * 1000 + "\n")
            if code == 250:
                accepted[re.search(rb"queued as ([0-9A-F]+)", msg).group(1).decode()] = time.monotonic()
        c.quit()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(inst, n, sessions):
    tail = LogTail(inst.log)
    accepted = {}
    cpu0, _ = qmgr_stats(inst)
    t0 = time.monotonic()
    send(inst, n, sessions, accepted)
    wait_for(lambda: all(q in tail.seen for q in accepted), 300, f"{n} deliveries", interval=0.01)
    t1 = max(tail.seen[q] for q in accepted)
    cpu1, rss = qmgr_stats(inst)
    tail.close()
    lat = sorted((tail.seen[q] - accepted[q]) * 1000 for q in accepted)
    return {"msgs": len(accepted), "msg_s": len(accepted) / (t1 - t0),
            "p50_ms": statistics.median(lat), "p95_ms": lat[int(len(lat) * 0.95) - 1], "max_ms": lat[-1],
            "qmgr_share_ms": 1000 * statistics.mean(tail.qmgr_share[q] for q in accepted),
            "qmgr_cpu_s": cpu1 - cpu0, "qmgr_rss_kib": rss}


def start_timed(inst):
    t0 = time.monotonic()
    inst.start()
    wait_for(lambda: inst.daemon_pids("qmgr"), 60, "qmgr")
    # qmgr answers a flush of one (absent) queue ID once its start, with the scan of deferred/, is over.
    sock = str(inst.spool / "public" / "qmgr")
    attrs = [(b"req", b"flush"), (b"queue_id", b"3F1A2B4C5D")]
    body = b"".join(bytes([len(k)]) + k + len(v).to_bytes(4, "big") + v for k, v in attrs)

    def answers():
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(60)
                s.connect(sock)
                s.sendall(len(body).to_bytes(4, "big") + body)
                return b"status" in s.recv(4096)
        except OSError:
            return False
    wait_for(answers, 60, "qmgr answering")
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deferred", type=int, default=100000)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--due", action="store_true",
                    help="the deferred messages are due at once, for a destination that refuses connections")
    args = ap.parse_args()

    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-qmgr-scale-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    port, sink_name, stop_sink = start_sink()
    inst = MailInstance(base / "inst", "postfix-bench",
                        master_cf=DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n")
    inst.postconf("mynetworks = 127.0.0.1/32", f"relayhost = [127.0.0.1]:{port}",
                  "queue_run_delay = 300s", "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s",
                  "default_destination_concurrency_limit = 20",
                  f"transport_maps = inline:{{ {{dead.example=smtp:[127.0.0.1]:{free_port()}}} }}")
    results = {}
    try:
        # Empty, full, empty again: a drift of the machine (other load) shows as a difference of the two
        # empty rounds. The disk settles (sync) before each round so that the fill's writeback is not
        # measured as qmgr's cost.
        rounds = (("empty queue", 0), (f"{args.deferred} deferred", args.deferred), ("empty again", -1))
        for label, fill in rounds:
            if fill > 0:
                due = ["-d", "0", "-r", "someone@dead.example"] if args.due else []
                r = subprocess.run([str(BIN.parent / "bench" / "fill_deferred"), "-c", str(inst.etc), "-n", str(fill), *due],
                                   capture_output=True, text=True, timeout=3600)
                assert r.returncode == 0, r.stderr
                print(f"fill_deferred: {r.stdout.strip()}", flush=True)
            elif fill < 0:
                for q in ("deferred", "active", "incoming", "defer"):
                    for p in (inst.spool / q).iterdir():
                        p.unlink()
            os.sync()
            time.sleep(2)
            startup = start_timed(inst)
            measure(inst, 50, args.sessions)  # warm-up: processes spawned, connections cached
            res = measure(inst, args.messages, args.sessions)
            res["start_s"] = startup
            res["deferred_left"] = len(os.listdir(inst.spool / "deferred"))
            res["active_left"] = len(os.listdir(inst.spool / "active"))
            results[label] = res
            inst.stop()
            print(f"{label}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in res.items()), flush=True)
    finally:
        inst.stop()
        stop_sink()
        shutil.rmtree(base, ignore_errors=True)
    a, b, c = results.values()
    print(f"sink: {sink_name}; {args.messages} messages, {args.sessions} sessions, 1 KiB")
    for k in ("msg_s", "p50_ms", "p95_ms", "qmgr_share_ms", "qmgr_cpu_s"):
        empty = (a[k] + c[k]) / 2
        print(f"{k}: deferred/empty (mean of both empty rounds) = {b[k] / empty:.2f}" if empty else
              f"{k}: empty rounds 0, deferred round {b[k]:.3f}")


if __name__ == "__main__":
    main()
