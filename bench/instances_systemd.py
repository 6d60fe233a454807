"""instances_systemd.py: N mail instances under a real systemd, postd beside Postfix 3.7 (issue 19, item 5).

What an administrator does, timed: `postmulti -e init`, N x `postmulti -I postfix-bK -e create` (each with its own
127.0.0.1 port in master.cf) and `-e enable`, `systemctl daemon-reload`, then `systemctl start` of the unit that
starts every instance: postd's postfix.target (its instances are Type=notify, so the start returns once every
one sent READY=1), Debian's postfix.service (its postfix@ instances are Type=forking: active once
`postmulti -p start` returned). Then the script checks that every port answers with a 220 banner, lets the
instances idle 10 s and sums VmRSS and PSS (/proc/PID/smaps_rollup) over every process of every postfix@
unit's cgroup, and times `postmulti -l` (median of 5).

Each side runs in its own systemd-nspawn container (tests/systemd/harness.sh: systemd is PID 1) on the
host's network, so that Debian's postfix can be installed in its container with apt (not timed); the two
packages' units have the same names and cannot share one container. postd comes from `meson install` of
build-bench. Not a test: `bench/run.sh systemd-instances [-n 49]` (root; 49 plus the default instance).
"""
import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

HARNESS = bench.TOP / "tests" / "systemd" / "harness.sh"
STEP_TIMEOUT = 600
BASE_SETTINGS = ["compatibility_level = 3.6", "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
                 "mydestination = localhost", "alias_maps =", "alias_database =", "biff = no"]

# Runs in the container: memory of every process in a postfix@ unit's cgroup, and the banner of each port.
PROBE = r'''
import json, os, socket, sys
rss = pss = procs = 0
units = set()
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        cg = open(f"/proc/{pid}/cgroup").read()
        if "/postfix@" not in cg:
            continue
        units.add(cg.split("/postfix@", 1)[1].split("/", 1)[0].strip())
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
        procs += 1
    except OSError:
        pass
import time
def banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.settimeout(10)
            return c.recv(100).startswith(b"220")
    except OSError:
        return False
bad = [int(p) for p in sys.argv[1:]]
for _ in range(30):  # bounded: 30 rounds a second apart for the slowest instance
    bad = [p for p in bad if not banner(p)]
    if not bad:
        break
    time.sleep(1)
print(json.dumps({"rss_kib": rss, "pss_kib": pss, "procs": procs, "units": len(units), "bad_ports": bad}))
'''


class Container:
    def __init__(self, name):
        self.env = dict(os.environ, POSTD_NSPAWN_NAME=name, POSTD_NSPAWN_NET="host")

    def harness(self, *args, input=None):
        p = subprocess.run(["bash", str(HARNESS), *args], env=self.env, input=input, capture_output=True,
                           text=True, timeout=STEP_TIMEOUT)
        if p.returncode != 0:
            raise bench.BenchError(f"harness.sh {' '.join(args[:2])} exited {p.returncode}:\n"
                                   f"{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        return p.stdout

    def sh(self, script):
        return self.harness("exec", "sh", "-c", script)

    def write(self, path, text):
        self.harness("exec", "sh", "-c", f"cat >{path}", input=text)

    def stop(self):
        try:
            self.harness("stop")
        except bench.BenchError as e:
            print(f"bench: {e}", file=sys.stderr)


def instance_ports(n):
    """n + 1 ports below the ephemeral range that nothing on the host listens on now."""
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    ports = []
    for port in range(max(1024, lo - 5000), lo):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n + 1:
            return ports
    raise bench.BenchError("not enough free ports below the ephemeral range")


def create_instances(c, ports, master_cf, postmulti):
    """The default instance on ports[0], instances postfix-b1..bN on the others, created and enabled."""
    settings = " ".join(f"'{s.replace(' = ', '=')}'" for s in BASE_SETTINGS)
    script = [
        "set -e",
        "mkdir -p /etc/postfix",
        f"{postmulti} -e init",
    ]
    for k, port in enumerate(ports[1:], 1):
        # Settings through postconf: Postfix's postmulti refuses some as arguments of create.
        script.append(f"{postmulti} -I postfix-b{k} -e create")
        script.append(f"postconf -c /etc/postfix-b{k} -e {settings} myhostname=b{k}.example.test")
    script.append("true")
    c.write("/root/create.sh", "\n".join(script) + "\n")
    for k, port in enumerate(ports):
        mc = master_cf(port) if callable(master_cf) else master_cf.format(port=port)
        c.write(f"/root/master-{k}.cf", mc)
    loop = ["cp /root/master-0.cf /etc/postfix/master.cf"]
    c.sh("sh /root/create.sh >/root/create.log 2>&1 || { cat /root/create.log; exit 1; }")
    for k in range(1, len(ports)):
        loop.append(f"cp /root/master-{k}.cf /etc/postfix-b{k}/master.cf")
        # Both postmultis create an instance with its inet services off, on purpose: on for the benchmark.
        loop.append(f"sed -i '/^master_service_disable/d' /etc/postfix-b{k}/main.cf")
        loop.append(f"{postmulti} -i postfix-b{k} -e enable")
    c.write("/root/enable.sh", "set -e\n" + "\n".join(loop) + "\n")
    c.sh("sh /root/enable.sh")


def measure(c, ports, unit):
    c.sh("systemctl daemon-reload")
    out = c.sh(f"t0=$(date +%s%N); systemctl start {unit} 2>/dev/null; rc=$?; t1=$(date +%s%N); "
               "echo $(( (t1 - t0) / 1000000 )) $rc")
    start_ms, start_rc = map(int, out.strip().splitlines()[-1].split())
    c.write("/root/probe.py", PROBE)
    c.sh("sleep 10")
    got = json.loads(c.sh(f"python3 /root/probe.py {' '.join(map(str, ports))}").strip().splitlines()[-1])
    if got["bad_ports"]:
        # Reported, not fatal: an instance that did not start in time is a result (Debian's postfix@ units
        # run configure-instance.sh first, and 50 of them at once can exceed TimeoutStartSec on 2 CPUs).
        failed = c.sh("systemctl --no-legend --no-pager list-units --state=failed 'postfix@*' | wc -l")
        print(f"  {unit}: {len(got['bad_ports'])} of {len(ports)} ports without a 220 banner after 30 s; "
              f"systemctl start exited {start_rc}; failed units: {failed.strip()}", flush=True)
    times = []
    for _ in range(5):
        out = c.sh("t0=$(date +%s%N); postmulti -l >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))")
        times.append(int(out.strip().splitlines()[-1]) / 1000)
    got["start_ms"] = start_ms
    got["answering"] = len(ports) - len(got["bad_ports"])
    got["postmulti_l_ms"] = sorted(times)[2]
    return got


def create_and_measure(c, ports, master_cf, unit):
    c.write("/etc/postfix/main.cf", "\n".join(BASE_SETTINGS) + "\nmyhostname = b0.example.test\n")
    create_instances(c, ports, master_cf, "postmulti")
    return measure(c, ports, unit)


def postfix_master_cf(port):
    out = []
    for line in bench.POSTFIX_DEBIAN_MASTER_CF.read_text().splitlines():
        f = line.split()
        if not line.startswith(("#", " ", "\t")) and len(f) >= 8 and f[0] == "smtp" and f[1] == "inet":
            f[0] = f"127.0.0.1:{port}"
            line = "  ".join(f)
        out.append(line)
    return "\n".join(out) + "\n"


def run_postd(n, ports, tag):
    dest = pathlib.Path(tempfile.mkdtemp(prefix="postd-destdir-", dir="/tmp"))
    c = Container(f"bench-postd-{tag}")
    try:
        p = subprocess.run(["meson", "install", "-C", str(bench.POSTD_BIN.parent), "--no-rebuild", "--quiet",
                            "--destdir", str(dest)], capture_output=True, text=True, timeout=STEP_TIMEOUT)
        if p.returncode != 0:
            raise bench.BenchError(f"meson install failed:\n{p.stdout}\n{p.stderr}")
        c.harness("boot", "--copy", str(dest))
        c.sh("systemd-sysusers && systemd-tmpfiles --create postfix.conf")
        return create_and_measure(c, ports, bench.POSTD_MASTER_CF, "postfix.target")
    finally:
        c.stop()
        shutil.rmtree(dest, ignore_errors=True)


def run_postfix(n, ports, tag):
    c = Container(f"bench-postfix-{tag}")
    try:
        c.harness("boot")
        c.sh("echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections && "
             "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -q "
             "--no-install-recommends postfix >/root/apt.log 2>&1 || { tail -20 /root/apt.log; exit 1; }")
        c.sh("systemctl stop postfix.service; systemctl disable -q postfix.service || true")
        return create_and_measure(c, ports, postfix_master_cf, "postfix.service")
    finally:
        c.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=49, help="instances besides the default one (default 49: 50 in all)")
    ap.add_argument("--only", choices=("postd", "Postfix"), help="run one side only")
    args = ap.parse_args()
    if not 1 <= args.n <= 500:
        raise bench.BenchError("-n must be 1..500")
    p = subprocess.run(["bash", str(HARNESS), "check"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise bench.BenchError(f"this machine cannot run the systemd container: {p.stderr.strip()}")
    subprocess.run(["bash", str(HARNESS), "setup"], check=True, timeout=1800)
    ports = instance_ports(args.n)
    meta = bench.versions()
    print(f"systemd-instances: {meta['date']}; {meta['machine']}; {args.n} instances + the default one, "
          f"each side in its own nspawn container", flush=True)
    results = {}
    sides = [(name, fn) for name, fn in (("postd", run_postd), ("Postfix", run_postfix))
             if args.only in (None, name)]
    for name, fn in sides:
        r = fn(args.n, ports, os.getpid())
        results[name] = r
        print(f"  {name:8} start {r['start_ms']} ms, {r['answering']} answering, {r['units']} units, {r['procs']} processes, "
              f"idle RSS {r['rss_kib'] / 1024:.1f} MiB, PSS {r['pss_kib'] / 1024:.1f} MiB, "
              f"postmulti -l {r['postmulti_l_ms']:.1f} ms", flush=True)
    if len(results) == 2:
        pf, pd = results["Postfix"], results["postd"]
        print()
        print(f"| {f'{args.n + 1} instances under systemd':34} | {'Postfix':>9} | {'postd':>9} | postd/Postfix |")
        print(f"|{'-' * 36}|{'-' * 10}:|{'-' * 10}:|{'-' * 14}:|")
        for title, key, scale in (("systemctl start returned, ms", "start_ms", 1),
                                  ("instances answering 220", "answering", 1),
                                  ("idle processes", "procs", 1),
                                  ("summed idle RSS, MiB", "rss_kib", 1024),
                                  ("summed idle PSS, MiB", "pss_kib", 1024),
                                  ("postmulti -l, ms", "postmulti_l_ms", 1)):
            a, b = pf[key] / scale, pd[key] / scale
            print(f"| {title:34} | {a:9.1f} | {b:9.1f} | {b / a if a else float('nan'):13.2f} |")


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        print(f"systemd-instances: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
