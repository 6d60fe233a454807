"""bench.py: measure postd against Postfix 3.7 with smtp-source into each, relaying to one smtp-sink (run by run.sh).

Both instances live in one temp dir, listen on their own 127.0.0.1 port, relay everything to
[127.0.0.1]:SINKPORT and keep their default durability (the queue file is fsync'd before the 250
reply to DATA). Every run starts its MTA fresh with an empty queue; runs alternate Postfix, postd,
Postfix, postd ... and the table shows medians. Every wait has a deadline: a failing or stuck MTA
ends the benchmark with a message saying which one and what it logged.
"""
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = pathlib.Path(__file__).resolve().parents[1]
POSTD_BIN = pathlib.Path(os.environ.get("POSTD_BUILD_DIR", TOP / "build-bench")) / "src"
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX_CMD = "/usr/sbin/postfix"
POSTFIX_DEFAULT_MAIN_CF = pathlib.Path("/etc/postfix/main.cf")
POSTFIX_DEBIAN_MASTER_CF = pathlib.Path("/etc/postfix/master.cf")
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
ROUNDS = max(2, int(os.environ.get("BENCH_ROUNDS", "2")))
KEEP = os.environ.get("BENCH_KEEP") == "1"
MAX_MESSAGES = 1_000_000  # a typo in BENCH_MESSAGES must not fill the disk

SAMPLE_INTERVAL = 0.2  # seconds between RSS samples
START_TIMEOUT = 30.0  # instance start until its port answers
STOP_TIMEOUT = 30.0
SETTLE_SECONDS = 3.0  # after start, before the idle RSS sample
STALL_TIMEOUT = 60.0  # no delivery progress for this long = the MTA is stuck
MIN_RATE = 10.0  # msg/s: deadlines assume at least this rate, plus a fixed margin
QUIET_CPU = 0.15  # CPUs busy with other work that still count as a quiet machine
QUIET_TIMEOUT = 60.0
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup/unified")  # cgroup v2: every MTA runs in its own cgroup
PERF = "/usr/bin/perf"
# Counted per MTA cgroup by `perf stat -G` (in-kernel counters, no tracing of each call): every call that
# waits for data to be durable, all syscalls, and context switches. sync_file_range is counted apart: postd's
# cleanup uses it (SYNC_FILE_RANGE_WRITE) only to start a batch's writes before their fdatasyncs; it waits
# for nothing and makes nothing durable, so it is shown as its own figure, not as an fsync.
SYNC_EVENTS = ("syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync", "syscalls:sys_enter_syncfs",
               "syscalls:sys_enter_sync", "syscalls:sys_enter_msync")
START_WRITE_EVENT = "syscalls:sys_enter_sync_file_range"
OTHER_EVENTS = ("raw_syscalls:sys_enter", "context-switches")
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
FAILURE_MARKS = (b"status=deferred", b"status=bounced", b"fatal:", b"panic:")


class BenchError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(5)
            return s.recv(512).startswith(b"220")
    except OSError:
        return False


def port_listening(port):
    """A listener on 127.0.0.1:port, seen in /proc without connecting (a probe would spawn an smtpd)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(l.split()[1] == want and l.split()[3] == "0A" for l in list(f)[1:])
    except OSError:
        return False


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- processes and memory, from /proc ----
def proc_table():
    """pid -> ppid for every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        table[int(d)] = int(fields[1])
    return table


def tree(root):
    """root and all its descendants."""
    table = proc_table()
    if root not in table:
        return []
    children = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo and len(out) < 10000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def proc_name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return f"{pid}"
    name = os.path.basename(argv[0].decode(errors="replace")).split()[0] if argv[0] else "?"
    return f"{name}[{pid}]"


def tree_cpu_seconds(root):
    """CPU time of a process tree: each live process's own and reaped children's time. A daemon that exited
    was reaped by the master, so its time is in the master's cutime/cstime."""
    total = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cgroup_dir():
    """The unified (v2) cgroup hierarchy, or None: without it the per-MTA counts are not taken."""
    for root in (CGROUP_ROOT, pathlib.Path("/sys/fs/cgroup")):
        if (root / "cgroup.procs").exists() and (root / "cgroup.controllers").exists():
            return root
    return None


class Counters:
    """perf stat -a -G CGROUP over one run: fsync-type calls, syscalls and context switches of every process
    in the MTA's cgroup (the master and every daemon it forks, whatever their names)."""

    def __init__(self, cgroup_rel, out):
        self.out = out
        events = SYNC_EVENTS + (START_WRITE_EVENT,) + OTHER_EVENTS
        self.proc = None
        if not cgroup_rel or not os.access(PERF, os.X_OK):
            return
        argv = [PERF, "stat", "-x", ",", "-o", str(out), "-a", "-e", ",".join(events),
                "-G", ",".join([cgroup_rel] * len(events))]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # perf opens its counters before the load starts

    def finish(self):
        """Event name -> count, or {} when perf could not count."""
        if not self.proc:
            return {}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {}
        counts = {}
        for line in self.out.read_text(errors="replace").splitlines():
            f = line.split(",")
            if len(f) > 3 and f[0].strip().isdigit():
                counts[f[2]] = counts.get(f[2], 0) + int(f[0])
        return counts


def wait_quiet():
    """Wait (bounded) until other work on the machine uses under QUIET_CPU of one CPU; returns what it used."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    while True:
        b0, a0 = cpu_busy_jiffies()
        time.sleep(1)
        b1, a1 = cpu_busy_jiffies()
        busy = (b1 - b0) / max(1, a1 - a0) * (os.cpu_count() or 1)
        if busy < QUIET_CPU or time.monotonic() > deadline:
            return busy


def cpu_busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v[:8]) - idle, sum(v[:8])


class Sampler(threading.Thread):
    """Peak of the summed RSS of an instance's process tree while a run lasts."""

    def __init__(self, mta):
        super().__init__(daemon=True)
        self.mta, self.peak_kb, self.peak_procs = mta, 0, 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            pids = self.mta.pids()
            total = sum(status_kb(p, "VmRSS") for p in pids)
            if total > self.peak_kb:
                self.peak_kb = total
            self.peak_procs = max(self.peak_procs, len(pids))
            self.stop_event.wait(SAMPLE_INTERVAL)

    def finish(self):
        self.stop_event.set()
        self.join(10)


# ---- the two MTAs ----
class Mta:
    name = "?"

    def __init__(self, root, sink_port, port=None):
        self.root = root
        self.port = port or free_port()
        self.etc = root / "etc"
        self.spool = root / "spool"
        self.data = root / "data"
        self.log = root / "maillog"
        for d in (self.etc, self.data):
            d.mkdir(parents=True)
        os.chmod(root, 0o755)
        shutil.chown(self.data, MAIL_OWNER)
        self.sink_port = sink_port
        self.log_offset = 0
        self.cgroup = None
        cg = cgroup_dir()
        if cg:
            self.cgroup = cg / f"postd-bench-{os.getpid()}-{self.name}-{root.name}"
            self.cgroup.mkdir(exist_ok=True)

    def cgroup_rel(self):
        return str(self.cgroup.relative_to(self.cgroup.parent)) if self.cgroup else None

    def remove_cgroup(self):
        if self.cgroup:
            try:
                self.cgroup.rmdir()
            except OSError as e:
                print(f"bench: cgroup {self.cgroup} left behind: {e}", file=sys.stderr)

    def common_main_cf(self, syslog_name):
        return (f"compatibility_level = 3.6\n"
                f"queue_directory = {self.spool}\n"
                f"data_directory = {self.data}\n"
                f"mail_owner = {MAIL_OWNER}\n"
                f"setgid_group = {SETGID_GROUP}\n"
                f"syslog_name = {syslog_name}\n"
                f"myhostname = {syslog_name}.example.test\n"
                "mydomain = example.test\n"
                "mydestination =\n"
                f"relayhost = [127.0.0.1]:{self.sink_port}\n"
                "mynetworks = 127.0.0.0/8\n"
                "inet_interfaces = 127.0.0.1\n"
                "inet_protocols = ipv4\n"
                "alias_maps =\n"
                "alias_database =\n"
                "biff = no\n"
                f"maillog_file = {self.log}\n"
                f"maillog_file_prefixes = {self.root}\n")

    def enter_cgroup(self):
        """In the child of `postfix start`: the master and all it forks are counted in the MTA's cgroup."""
        if self.cgroup:
            (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def command(self, *args, timeout=60):
        env = dict(os.environ)
        for k in ("MAIL_CONFIG", "INVOCATION_ID", "JOURNAL_STREAM", "POSTD_LOG"):
            env.pop(k, None)
        try:
            return subprocess.run([self.postfix_cmd, "-c", str(self.etc), *args], capture_output=True,
                                  text=True, env=env, timeout=timeout,
                                  preexec_fn=self.enter_cgroup if args[:1] == ("start",) else None)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name}: `postfix {' '.join(args)}` did not finish in {timeout}s")

    def master_pid(self):
        try:
            return int((self.spool / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def pids(self):
        pid = self.master_pid()
        return tree(pid) if pid else []

    def start(self):
        r = self.command("start")
        if r.returncode != 0:
            raise BenchError(f"{self.name}: postfix start failed ({r.returncode}):\n{r.stderr}{self.log_tail()}")
        try:
            wait_until(lambda: port_listening(self.port), START_TIMEOUT, f"{self.name} to listen on port {self.port}")
        except BenchError as e:
            raise BenchError(f"{e}\n{self.log_tail()}")

    def stop(self):
        pid = self.master_pid()
        if not pid or not tree(pid):
            return
        self.command("stop")
        try:
            wait_until(lambda: not tree(pid), STOP_TIMEOUT, f"{self.name} to stop")
        except BenchError:
            for p in tree(pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            print(f"bench: {self.name} did not stop within {STOP_TIMEOUT:.0f}s; killed", file=sys.stderr)

    def queued(self):
        n = 0
        for q in QUEUES:
            for _dirpath, _dirs, files in os.walk(self.spool / q):
                n += len(files)
        return n

    def log_tail(self, lines=15):
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {self.log})"
        return f"--- last lines of {self.log}:\n" + "\n".join(text)

    def mark_log(self):
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0

    def read_new_log(self):
        """Complete log lines written since the last call."""
        if not self.log.exists():
            return b""
        with open(self.log, "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.log_offset += end
        return data[:end]


class Postfix(Mta):
    name = "Postfix"
    postfix_cmd = POSTFIX_CMD

    def __init__(self, root, sink_port, port=None):
        super().__init__(root, sink_port, port)
        self.spool.mkdir(mode=0o755)  # Postfix creates the queue's subdirectories, not the queue itself
        (self.etc / "main.cf").write_text(self.common_main_cf("postfix-bench"))
        # Debian's master.cf as installed, with this instance's listener and no chroot (a private
        # queue_directory has no copies of /etc inside; chroot costs nothing measurable).
        out = []
        for line in POSTFIX_DEBIAN_MASTER_CF.read_text().splitlines():
            f = line.split()
            if line.startswith(("#", " ", "\t")) or len(f) < 8:
                out.append(line)
                continue
            if f[4] == "y":
                f[4] = "n"
            if f[0] == "smtp" and f[1] == "inet":
                f[0] = f"127.0.0.1:{self.port}"
            out.append("  ".join(f))
        (self.etc / "master.cf").write_text("\n".join(out) + "\n")


POSTD_MASTER_CF = """\
127.0.0.1:{port} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
smtp      unix  -       -       n       -       -       smtp
local     unix  -       n       n       -       -       local
bounce    unix  -       -       n       -       0       bounce
"""


class Postd(Mta):
    name = "postd"
    postfix_cmd = str(POSTD_BIN / "postfix")

    def __init__(self, root, sink_port, port=None):
        super().__init__(root, sink_port, port)
        (self.etc / "main.cf").write_text(self.common_main_cf("postd-bench")
                                          + f"daemon_directory = {POSTD_BIN}\n"
                                          + f"command_directory = {POSTD_BIN}\n")
        (self.etc / "master.cf").write_text(POSTD_MASTER_CF.format(port=self.port))


# ---- one measurement ----
def measure(mta, sessions, messages, size):
    mta.start()
    sampler = None
    counters = None
    try:
        time.sleep(SETTLE_SECONDS)
        idle_pids = mta.pids()
        idle_rss = sum(status_kb(p, "VmRSS") for p in idle_pids)
        idle_pss = sum(pss_kb(p) for p in idle_pids)
        mta.mark_log()
        os.sync()
        background = wait_quiet()
        sampler = Sampler(mta)
        sampler.start()
        counters = Counters(mta.cgroup_rel(), mta.root / "perf-stat.csv")
        busy0, all0 = cpu_busy_jiffies()
        mta_cpu0 = tree_cpu_seconds(mta.master_pid())
        t0 = time.monotonic()
        timeout = messages / MIN_RATE + 60
        try:
            src = subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
                                  "-f", "bench@example.org", "-t", "sink@example.net", f"127.0.0.1:{mta.port}"],
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{mta.name}: smtp-source did not finish in {timeout:.0f}s\n{mta.log_tail()}")
        t1 = time.monotonic()
        if src.returncode != 0 or "fatal" in src.stderr or "error" in src.stderr:
            raise BenchError(f"{mta.name}: smtp-source failed ({src.returncode}): {src.stderr.strip()[:2000]}\n"
                             f"{mta.log_tail()}")
        sent, last_progress = 0, time.monotonic()
        deadline = t1 + timeout
        while True:
            new = mta.read_new_log()
            for mark in FAILURE_MARKS:
                i = new.find(mark)
                if i >= 0:
                    line = new[new.rfind(b"\n", 0, i) + 1:new.find(b"\n", i)].decode(errors="replace")
                    raise BenchError(f"{mta.name}: delivery failed: {line}")
            n = new.count(b"status=sent")
            if n:
                sent += n
                last_progress = time.monotonic()
            if sent >= messages and mta.queued() == 0:
                break
            now = time.monotonic()
            if now > deadline or now - last_progress > STALL_TIMEOUT:
                raise BenchError(f"{mta.name}: {sent} of {messages} messages delivered, {mta.queued()} queued, "
                                 f"no progress for {now - last_progress:.0f}s\n{mta.log_tail()}")
            time.sleep(0.02)
        t2 = time.monotonic()
        busy1, all1 = cpu_busy_jiffies()
        mta_cpu1 = tree_cpu_seconds(mta.master_pid())
        counts = counters.finish()
        counters = None
        syncs = sum(counts.get(e, 0) for e in SYNC_EVENTS)
        nan = float("nan")
        ncpu = os.cpu_count() or 1
        return {
            "latency_ms": (t1 - t0) * 1000 / messages * sessions,
            "syncs_per_msg": syncs / messages if counts else nan,
            "msgs_per_sync": messages / syncs if syncs else nan,
            "start_writes_per_msg": counts.get(START_WRITE_EVENT, 0) / messages if counts else nan,
            "syscalls_per_msg": counts.get("raw_syscalls:sys_enter", nan) / messages if counts else nan,
            "cswitch_per_msg": counts.get("context-switches", nan) / messages if counts else nan,
            "counts": counts,
            "accepted": messages / (t1 - t0),
            "e2e": messages / (t2 - t0),
            "peak_rss_mb": sampler.peak_kb / 1024,
            "peak_procs": sampler.peak_procs,
            "idle_rss_mb": idle_rss / 1024,
            "idle_pss_mb": idle_pss / 1024,
            "idle_procs": len(idle_pids),
            "mta_cpu_ms_per_msg": (mta_cpu1 - mta_cpu0) * 1000 / messages,
            # whole machine (MTA + smtp-source + smtp-sink + anything else): CPU ms per message, utilisation
            "cpu_ms_per_msg": (busy1 - busy0) / os.sysconf("SC_CLK_TCK") * 1000 / messages,
            "cpu_util": (busy1 - busy0) / max(1, all1 - all0) * ncpu,
            "background_cpu": background,
            "idle_detail": {proc_name(p): status_kb(p, "VmRSS") for p in idle_pids},
        }
    finally:
        if sampler:
            sampler.finish()
        if counters:
            counters.finish()
        mta.stop()


# ---- /etc/postfix/main.cf: alternate_config_directories for the run only ----
class DefaultMainCf:
    """`param = DIRS` (alternate_config_directories or multi_instance_directories) appended to
    /etc/postfix/main.cf for the run: Postfix's `postfix -c DIR` accepts a DIR the default main.cf lists.
    The file is restored afterwards (removed when it did not exist)."""

    def __init__(self, config_dirs, param="alternate_config_directories"):
        self.config_dirs = str(config_dirs)
        self.param = param
        self.saved = None
        self.existed = POSTFIX_DEFAULT_MAIN_CF.exists()

    def __enter__(self):
        line = f"\n# bench/run.sh (removed after the run)\n{self.param} = {self.config_dirs}\n"
        if self.existed:
            self.saved = POSTFIX_DEFAULT_MAIN_CF.read_bytes()
            st = POSTFIX_DEFAULT_MAIN_CF.stat()
            self.mode = st.st_mode & 0o7777
            text = self.saved.decode()
            # Keep what the admin listed; a later definition overrides an earlier one in main.cf.
            m = re.findall(rf"^{self.param}\s*=\s*(.*)$", text, re.M)
            if m and m[-1].strip():
                line = (f"\n# bench/run.sh (removed after the run)\n"
                        f"{self.param} = {m[-1]}, {self.config_dirs}\n")
            POSTFIX_DEFAULT_MAIN_CF.write_bytes(self.saved + line.encode())
        else:
            POSTFIX_DEFAULT_MAIN_CF.write_text("compatibility_level = 3.6" + line)
        return self

    def __exit__(self, *exc):
        if self.existed:
            POSTFIX_DEFAULT_MAIN_CF.write_bytes(self.saved)
            os.chmod(POSTFIX_DEFAULT_MAIN_CF, self.mode)
        else:
            POSTFIX_DEFAULT_MAIN_CF.unlink(missing_ok=True)


def stale_build():
    """Whether ninja would rebuild something in the build the postd programs come from: its figures would
    then be labelled with a git revision they were not built from."""
    build = POSTD_BIN.parent
    if not (build / "build.ninja").exists():
        return False
    r = subprocess.run(["ninja", "-C", str(build), "-n"], capture_output=True, text=True, timeout=120)
    return r.returncode != 0 or "no work to do" not in r.stdout


def versions():
    if stale_build():
        raise BenchError(f"{POSTD_BIN.parent} is older than the sources: run bench/run.sh (it rebuilds) "
                         f"or ninja -C {POSTD_BIN.parent}")
    pf = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "postfix"], capture_output=True, text=True).stdout
    pd = subprocess.run([str(POSTD_BIN / "postconf"), "-dh", "mail_version"], capture_output=True,
                        text=True).stdout.strip()
    rev = subprocess.run(["git", "-C", str(TOP), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(TOP), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "postfix": pf,
        "postd": f"{pd or '?'} (git {rev}{'+local changes' if dirty else ''}, buildtype=release)",
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30}"
                   f" GiB, kernel {platform.release()}",
    }


def fmt(v):
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def main():
    if not 1 <= MESSAGES <= MAX_MESSAGES:
        raise BenchError(f"BENCH_MESSAGES must be 1..{MAX_MESSAGES}")
    small = max(1, MESSAGES // 5)
    variants = [
        ("20 sessions, 1 KiB", 20, MESSAGES, 1024),
        ("50 sessions, 1 KiB", 50, MESSAGES, 1024),
        ("100 sessions, 1 KiB", 100, MESSAGES, 1024),
        ("1 session, 1 KiB", 1, small, 1024),
        ("20 sessions, 100 KiB", 20, small, 102400),
    ]
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-bench-", dir="/tmp"))
    os.chmod(base, 0o755)
    sink = None
    mtas = []
    results = {}
    meta = versions()
    try:
        sink_port = free_port()
        sink_log = open(base / "smtp-sink.log", "wb")
        sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{sink_port}", "1024"],
                                stdout=subprocess.DEVNULL, stderr=sink_log)
        wait_until(lambda: sink.poll() is not None or port_answers(sink_port), 10, "smtp-sink")
        if sink.poll() is not None:
            raise BenchError(f"smtp-sink exited: {(base / 'smtp-sink.log').read_text(errors='replace')}")
        mtas = [Postfix(base / "postfix", sink_port), Postd(base / "postd", sink_port)]
        with DefaultMainCf(mtas[0].etc):
            print(f"bench: {meta['date']}; {meta['machine']}", flush=True)
            print(f"bench: Postfix {meta['postfix']} vs postd {meta['postd']}; {ROUNDS} rounds, "
                  f"alternating; temp dir {base}", flush=True)
            for label, sessions, messages, size in variants:
                for rnd in range(ROUNDS):
                    for mta in mtas:
                        r = measure(mta, sessions, messages, size)
                        results.setdefault(label, {}).setdefault(mta.name, []).append(r)
                        print(f"  {label:20} round {rnd + 1} {mta.name:8} accepted {fmt(r['accepted']):>6} msg/s, "
                              f"end-to-end {fmt(r['e2e']):>6} msg/s, peak RSS {r['peak_rss_mb']:.1f} MB "
                              f"({r['peak_procs']} procs), idle RSS {r['idle_rss_mb']:.1f} MB, "
                              f"MTA CPU {r['mta_cpu_ms_per_msg']:.2f} ms/msg, machine CPU {r['cpu_ms_per_msg']:.2f} "
                              f"ms/msg, {r['msgs_per_sync']:.2f} msg/fsync, {r['syscalls_per_msg']:.0f} syscalls/msg, "
                              f"{r['cswitch_per_msg']:.1f} cs/msg, background {r['background_cpu']:.2f} CPU",
                              flush=True)
        print_table(variants, results, meta)
        out = os.environ.get("BENCH_JSON")
        if out:
            pathlib.Path(out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    finally:
        for mta in mtas:
            mta.remove_cgroup()
        if sink and sink.poll() is None:
            sink.terminate()
            try:
                sink.wait(10)
            except subprocess.TimeoutExpired:
                sink.kill()
        if KEEP:
            print(f"bench: kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def print_table(variants, results, meta):
    metrics = [("accepted msg/s", "accepted"), ("end-to-end msg/s", "e2e"), ("peak RSS MB", "peak_rss_mb"),
               ("idle RSS MB", "idle_rss_mb"), ("idle PSS MB", "idle_pss_mb"),
               ("MTA CPU ms/msg", "mta_cpu_ms_per_msg"), ("machine CPU ms/msg", "cpu_ms_per_msg"),
               ("fsync-type calls/msg", "syncs_per_msg"), ("msgs per fsync", "msgs_per_sync"),
               ("sync_file_range/msg", "start_writes_per_msg"),
               ("syscalls/msg", "syscalls_per_msg"), ("context switches/msg", "cswitch_per_msg"),
               ("ms/msg per session", "latency_ms")]
    print()
    print(f"Medians of {ROUNDS} runs each; {meta['date']}; {meta['machine']}")
    print(f"Postfix {meta['postfix']}; postd {meta['postd']}")
    print(f"| {'run':28} | {'metric':20} | {'Postfix':>9} | {'postd':>9} | {'postd/Postfix':>13} |")
    print(f"|{'-' * 30}|{'-' * 22}|{'-' * 10}:|{'-' * 10}:|{'-' * 14}:|")
    for label, _s, messages, _size in variants:
        for title, key in metrics:
            pf = statistics.median(r[key] for r in results[label]["Postfix"])
            pd = statistics.median(r[key] for r in results[label]["postd"])
            ratio = pd / pf if pf else float("nan")
            print(f"| {label + f' x{messages}':28} | {title:20} | {fmt(pf):>9} | {fmt(pd):>9} | {ratio:>13.2f} |")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
