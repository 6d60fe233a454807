#!/usr/bin/python3
"""many_instances.py: N instances on one host, postd beside Postfix 3.7 (issue 19, item 5): time until every
one listens on its SMTP port after all are started at once, their summed idle memory, and `postmulti -l`.

Each side gets N instances of bench.py's setup (own config, queue and data directories, own 127.0.0.1 port,
Debian's defaults otherwise; Postfix with Debian's master.cf, postd with the same services), each started in
its own cgroup. Both log through syslog as installed (no maillog_file: Postfix would add a postlogd to each).
All N are started concurrently with `postfix -c DIR start`; the script waits (bounded) until every port
listens (seen in /proc/net/tcp: a probe would start an smtpd), lets them idle, sums VmRSS and PSS
(/proc/PID/smaps_rollup) over every process of every instance's cgroup, then checks that every port sends
its 220 banner. The instances are listed as multi_instance_directories of a default instance (Postfix:
/etc/postfix/main.cf for the run, restored after; postd: a default config directory of the run's own,
POSTD_DEFAULT_CONFIG_DIR) and `postmulti -l` is timed (median of 5). Postfix first, then postd; each side is
stopped before the other starts. Not a test: run through `bench/run.sh instances [-n 50]`.
"""
import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

START_DEADLINE = 180.0  # seconds for all instances to answer
POSTMULTI_RUNS = 5


def banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(5)
            return s.recv(100).startswith(b"220")
    except OSError:
        return False


def kib(pid, path, field):
    try:
        for line in (pathlib.Path(f"/proc/{pid}") / path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def listen_ports(n):
    """n free ports below the kernel's ephemeral range: a port picked inside it (bind to port 0) can be taken
    by any outgoing connection on this shared machine before the instance binds it."""
    lo = int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = []
    for port in range(max(1024, lo - 12000), lo):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise bench.BenchError(f"fewer than {n} free ports under {lo}")


def cgroup_pids(inst):
    try:
        return [int(x) for x in (inst.cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return inst.pids()


def time_postmulti(cmd, env, n):
    runs = []
    for _ in range(POSTMULTI_RUNS):
        t0 = time.monotonic()
        r = subprocess.run([cmd, "-l"], capture_output=True, text=True, env=env, timeout=60)
        runs.append(time.monotonic() - t0)
        if r.returncode != 0 or len(r.stdout.splitlines()) < n:
            raise bench.BenchError(f"{cmd} -l failed or listed {len(r.stdout.splitlines())} of {n} instances: "
                                   f"{r.stderr.strip()[:500]}")
    return statistics.median(runs)


def run_side(insts, postmulti, env, idle):
    name = insts[0].name
    for i, inst in enumerate(insts):
        # Logging as installed (syslog), not to a file: Postfix's maillog_file adds a postlogd process per
        # instance that a stock instance does not have.
        main_cf = inst.etc / "main.cf"
        text = "".join(l + "\n" for l in main_cf.read_text().splitlines() if not l.startswith("maillog_file"))
        main_cf.write_text(text + f"multi_instance_name = postfix-b{i}\nmulti_instance_enable = yes\n")
    t0 = time.monotonic()
    errors = []

    def start(inst):
        try:
            r = inst.command("start", timeout=START_DEADLINE)
            if r.returncode != 0:
                errors.append(f"{inst.etc}: {r.stderr.strip()[:300]}")
        except bench.BenchError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=start, args=(inst,)) for inst in insts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(START_DEADLINE)
    # Listening is seen in /proc/net/tcp: a probe connection would start an smtpd in every instance, which
    # would then count in the idle memory. Each instance's 220 banner is checked after the memory is read.
    waiting = list(insts)
    while waiting and time.monotonic() - t0 < START_DEADLINE:
        waiting = [i for i in waiting if not bench.port_listening(i.port)]
        if waiting:
            time.sleep(0.05)
    elapsed = time.monotonic() - t0
    if errors or waiting:
        raise bench.BenchError(f"{name}: {len(errors)} starts failed, {len(waiting)} instances not listening "
                               f"after {START_DEADLINE:.0f}s; first: {(errors or [''])[0]}")
    print(f"  {name}: {len(insts)} started and listening after {elapsed:.2f} s", flush=True)
    time.sleep(idle)
    pids = [p for inst in insts for p in cgroup_pids(inst)]
    rss = sum(kib(p, "status", "VmRSS") for p in pids)
    pss = sum(kib(p, "smaps_rollup", "Pss") for p in pids)
    by_name = {}
    for p in pids:
        try:
            comm = pathlib.Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            continue
        by_name.setdefault(comm, []).append((kib(p, "status", "VmRSS"), kib(p, "smaps_rollup", "Pss")))
    for comm, mem in sorted(by_name.items()):
        print(f"  {name}: {len(mem)} x {comm}: mean RSS {sum(m[0] for m in mem) / len(mem) / 1024:.2f} MiB, "
              f"mean PSS {sum(m[1] for m in mem) / len(mem) / 1024:.2f} MiB", flush=True)
    silent = [i.port for i in insts if not banner(i.port)]
    if silent:
        raise bench.BenchError(f"{name}: {len(silent)} instances listen but send no 220 banner: ports {silent[:10]}")
    pm = time_postmulti(postmulti, env, len(insts))
    print(f"  {name}: idle after {idle:.0f} s: {len(pids)} processes, summed RSS {rss / 1024:.1f} MiB, summed PSS "
          f"{pss / 1024:.1f} MiB; postmulti -l {pm * 1000:.0f} ms", flush=True)
    return {"start_s": elapsed, "procs": len(pids), "rss_mib": rss / 1024, "pss_mib": pss / 1024,
            "rss_per_inst_mib": rss / 1024 / len(insts), "pss_per_inst_mib": pss / 1024 / len(insts),
            "postmulti_ms": pm * 1000}


def stop_all(insts):
    threads = [threading.Thread(target=inst.stop) for inst in insts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(bench.STOP_TIMEOUT + 10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--instances", type=int, default=50)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idling before memory is summed")
    ap.add_argument("--postd-only", action="store_true",
                    help="only postd's side (no Postfix instances, no comparison table): to iterate on postd")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("many_instances.py: run as root (bench/run.sh instances)")
    if not 1 <= args.instances <= 500:
        sys.exit("many_instances.py: -n between 1 and 500")
    n = args.instances
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-many-", dir="/tmp"))
    os.chmod(base, 0o755)
    meta = bench.versions()
    res = {}
    sides = []
    try:
        sink = bench.free_port()  # nothing is sent
        ports = listen_ports(2 * n)
        pf = [] if args.postd_only else [bench.Postfix(base / f"pf{k}", sink, ports[k]) for k in range(n)]
        pd = [bench.Postd(base / f"pd{k}", sink, ports[n + k]) for k in range(n)]
        sides = [pf, pd]
        pd_default = base / "postd-default"
        pd_default.mkdir()
        (pd_default / "main.cf").write_text("multi_instance_directories = "
                                            + " ".join(str(i.etc) for i in pd) + "\n")
        (pd_default / "master.cf").write_text("")
        print(f"instances: {meta['date']}; {meta['machine']}; Postfix {meta['postfix']} vs postd {meta['postd']}; "
              f"{n} instances each", flush=True)
        env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
        dirs = ", ".join(str(i.etc) for i in pf)
        if pf:
            with bench.DefaultMainCf(dirs, param="multi_instance_directories"):
                bench.wait_quiet()
                try:
                    res["Postfix"] = run_side(pf, "/usr/sbin/postmulti", env, args.idle)
                finally:
                    stop_all(pf)
        bench.wait_quiet()
        try:
            res["postd"] = run_side(pd, str(bench.POSTD_BIN / "postmulti"),
                                    dict(env, POSTD_DEFAULT_CONFIG_DIR=str(pd_default)), args.idle)
        finally:
            stop_all(pd)
        if pf:
            print_table(n, res, meta)
    finally:
        for side in sides:
            stop_all(side)
            for inst in side:
                inst.remove_cgroup()
        if not bench.KEEP:
            subprocess.run(["rm", "-rf", str(base)])


def print_table(n, res, meta):
    rows = [("start to all listening, s", "start_s"), ("processes", "procs"),
            ("summed idle RSS, MiB", "rss_mib"), ("summed idle PSS, MiB", "pss_mib"),
            ("idle RSS per instance, MiB", "rss_per_inst_mib"), ("idle PSS per instance, MiB", "pss_per_inst_mib"),
            ("postmulti -l, ms", "postmulti_ms")]
    pf, pd = res["Postfix"], res["postd"]
    print(f"\n{n} instances; {meta['date']}; {meta['machine']}")
    print(f"| {'metric':30} | {'Postfix':>9} | {'postd':>9} | {'postd/Postfix':>13} |")
    print(f"|{'-' * 32}|{'-' * 10}:|{'-' * 10}:|{'-' * 14}:|")
    for title, key in rows:
        ratio = pd[key] / pf[key] if pf[key] else float("nan")
        print(f"| {title:30} | {bench.fmt(pf[key]):>9} | {bench.fmt(pd[key]):>9} | {ratio:>13.2f} |")


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        print(f"instances: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
