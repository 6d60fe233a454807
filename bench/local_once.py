#!/usr/bin/python3
"""local_once.py: local delivery throughput, to see what exactly-once delivery costs (bench/local_once.sh).

One instance per run. N messages are written straight into incoming/ with queue-inject while the master
is stopped, then the master starts and the time until qmgr has logged "removed" for all of them is taken:
local's delivery rate with the queue already full (no SMTP, no cleanup in the measure). Destinations,
through aliases so that nobody's home is touched: an mbox file and a Maildir in the run's directory,
written as default_privs. Each message has R recipients (aliases to the same mailbox); qmgr sends local
local_destination_recipient_limit of them per request (set to R), so R > 1 shows the attempt records of
one request sharing one fdatasync. Run it once per build (POSTD_BUILD_DIR) to compare; on a busy machine alternate the builds run by run
(-r 1, -o KIND:R) and take the medians.
"""
import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("POSTD_BUILD_DIR", str(ROOT / "build"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from mailinstance import MailInstance  # noqa: E402

BIN = pathlib.Path(os.environ["POSTD_BUILD_DIR"]) / "src"
LIMIT_SEC = 600
BODY = "Subject: local_once bench\n\n" + "a line of the body of the benchmark message\n" * 20


def run_once(kind, n, rcpts):
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-local-", dir="/tmp"))
    os.chmod(base, 0o755)
    box = base / "box"
    box.mkdir()
    os.chmod(box, 0o777)  # the aliases' deliveries run as default_privs
    target = f"{box}/md/" if kind == "maildir" else f"{box}/mbox"
    inst = MailInstance(base / "i", name="postfix-bench-local",
                        main_extra=f"local_destination_recipient_limit = {rcpts}\n"
                                   "mailbox_delivery_lock = fcntl\n")
    try:
        with open(inst.aliases, "a") as f:
            for r in range(rcpts):
                f.write(f"bench{r}: {target}\n")
        inst.newaliases()
        inst.start()  # the queue layout
        inst.stop()
        env = dict(os.environ, **inst.env)
        to = [f"bench{r}@localhost" for r in range(rcpts)]
        for _ in range(n):
            subprocess.run([str(BIN.parent / "tests" / "queue-inject"), "-c", str(inst.etc), "-n", "-f", "sender@example.test",
                            *to], input=BODY, text=True, env=env, check=True, stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        inst.start()
        deadline = t0 + LIMIT_SEC
        done = 0
        while time.monotonic() < deadline:
            done = len(re.findall(r": removed\n", inst.logtext()))
            if done >= n:
                break
            time.sleep(0.05)
        took = time.monotonic() - t0
        sent = len(re.findall(r"status=sent", inst.logtext()))
        if done < n or sent != n * rcpts:
            sys.exit(f"{kind}: {done}/{n} removed, {sent} sent lines after {took:.0f} s; "
                     f"log tail:\n{inst.logtext()[-2000:]}")
        return took
    finally:
        inst.stop()
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--messages", type=int, default=1000)
    ap.add_argument("-r", "--rounds", type=int, default=2)
    ap.add_argument("-o", "--only", action="append", metavar="KIND:R",
                    help="only these runs, e.g. mbox:1 or maildir:10 (repeatable); default all four")
    args = ap.parse_args()
    runs = [(k, int(r)) for k, r in (o.split(":") for o in args.only)] if args.only else [
        (k, r) for k in ("mbox", "maildir") for r in (1, 10)]
    if os.geteuid() != 0:
        sys.exit("local_once: run as root (the instance chowns its directories to mail_owner)")
    print(f"build {BIN}, {args.messages} messages per run, median of {args.rounds}", flush=True)
    for kind, rcpts in runs:
        took = sorted(run_once(kind, args.messages, rcpts) for _ in range(args.rounds))
        med = statistics.median(took)
        print(f"{kind:8} {rcpts:2} rcpt/msg: {args.messages * rcpts / med:7.0f} deliveries/s "
              f"({args.messages * rcpts} in {med:.2f} s; runs {', '.join(f'{t:.2f}' for t in took)})",
              flush=True)


if __name__ == "__main__":
    main()
