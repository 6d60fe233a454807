"""mailinstance.py: a real postd instance in a temporary directory, started with `postfix start`.

Every mail test uses this one helper, so that instances side by side differ only in what a
test asks for. The daemons come from the build directory (daemon_directory = BUILD/src), the
instance owns its config, queue, data and mail spool directories under `root`, and logs to
`root/maillog`.
"""
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, run

# Accounts dev.sh creates: the mail owner and the setgid group as Postfix packages do, and a
# local user to deliver to (its home is /home/postd-test).
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
TEST_USER = "postd-test"

# error and discard cost nothing until a transport_maps route uses them: the master spawns on demand.
DEFAULT_MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
local     unix  -       n       n       -       -       local
bounce    unix  -       -       n       -       0       bounce
error     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def no_crash_guard(started):
    """An autouse fixture for a test module: after each test, no daemon of the instances the test put in
    started (a list the module appends to) may have crashed; the client's answers alone would not show
    it (smtpd still answers 250 for a message a dying cleanup had committed)."""
    @pytest.fixture(autouse=True)
    def no_daemon_crash():
        started.clear()
        yield
        for inst in started:
            assert not re.search(r"killed by signal|exit status \d+", inst.logtext()), inst.logtext()
    return no_daemon_crash


def vm_kib(pid, field):
    """A VmHWM/VmRSS-style field of /proc/PID/status in KiB, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_for(pred, timeout=10.0, what="condition", interval=0.05):
    """Poll pred until it returns something true; bounded by timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class MailInstance:
    def __init__(self, root: pathlib.Path, name="postfix-test", port=None, master_cf=None,
                 main_extra=""):
        self.root = pathlib.Path(root)
        self.name = name
        self.port = port or free_port()
        self.etc = self.root / "etc"
        self.spool = self.root / "spool"
        self.data = self.root / "data"
        self.mail_spool = self.root / "mail"  # mbox files: mail_spool_directory
        self.log = self.root / "maillog"
        self.etc.mkdir(parents=True)
        self.data.mkdir()
        self.mail_spool.mkdir()
        os.chmod(self.root, 0o755)
        os.chmod(self.mail_spool, 0o1777)
        subprocess.run(["chown", MAIL_OWNER, str(self.data)], check=True)
        self.aliases = self.etc / "aliases"
        self.aliases.write_text("postmaster: root\nMAILER-DAEMON: postmaster\n")
        self.main_cf = self.etc / "main.cf"
        self.main_cf.write_text(
            f"queue_directory = {self.spool}\n"
            f"data_directory = {self.data}\n"
            f"daemon_directory = {BIN}\n"
            f"command_directory = {BIN}\n"
            f"mail_spool_directory = {self.mail_spool}\n"
            f"syslog_name = {name}\n"
            "compatibility_level = 3.6\n"  # as the shipped main.cf has it
            f"mail_owner = {MAIL_OWNER}\n"
            f"setgid_group = {SETGID_GROUP}\n"
            "myhostname = mx.example.test\n"
            "mydomain = example.test\n"
            "mydestination = localhost, $myhostname\n"
            "inet_interfaces = 127.0.0.1\n"
            "inet_protocols = ipv4\n"
            f"alias_maps = hash:{self.aliases}\n"
            f"alias_database = hash:{self.aliases}\n"
            # No client name lookups: a PTR query for a test's 127.x source would leave the machine
            # (test_client_dns.py turns them on against its own DNS server).
            "smtpd_peername_lookup = no\n"
            "service_throttle_time = 2s\n"
            "queue_run_delay = 2s\n"
            "minimal_backoff_time = 2s\n"
            "maximal_backoff_time = 4s\n"
            + main_extra)
        (self.etc / "master.cf").write_text((master_cf or DEFAULT_MASTER_CF).format(port=self.port))
        # POSTD_NO_SYSTEMCTL: postfix start runs the master itself even on a host with systemd as PID 1.
        self.env = {"POSTD_LOG": f"file:{self.log}", "POSTD_NO_SYSTEMCTL": "1"}
        self.newaliases()

    # ---- commands ----
    def cmd(self, name, *args, input=None, env=None, timeout=60):
        """Run a built command with -c of this instance's config directory first."""
        full_env = dict(self.env)
        full_env.update(env or {})
        return run(name, "-c", self.etc, *args, input=input, env=full_env, timeout=timeout)

    def postfix(self, *args, timeout=90):
        return self.cmd("postfix", *args, timeout=timeout)

    def postconf(self, *settings):
        r = self.cmd("postconf", "-e", *settings)
        assert r.returncode == 0, r.stderr

    def newaliases(self):
        r = run("postalias", "-c", self.etc, f"hash:{self.aliases}")
        assert r.returncode == 0, r.stderr

    def start(self):
        r = self.postfix("start")
        assert r.returncode == 0, f"postfix start failed:\n{r.stderr}\n--- maillog:\n{self.logtext()}"
        return r

    def stop(self):
        pid = self.master_pid()
        if pid and pid_alive(pid):
            self.postfix("stop")
        pid = self.master_pid()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def master_pid(self):
        try:
            return int((self.spool / "pid" / "master.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    # ---- observations ----
    def logtext(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, pattern, timeout=20.0):
        """Wait until a maillog line matches the regular expression; returns the match."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.logtext()), timeout, f"maillog line /{pattern}/ in {self.log}")

    def queue_files(self, queue):
        d = self.spool / queue
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))

    def daemon_pids(self, daemon, helpers=False):
        """PIDs of this instance's processes running daemon (e.g. "qmgr"), from /proc. A daemon's helper
        processes (forked, not executed: local's command spawner, named by its /proc/PID/comm) only
        with helpers=True."""
        found = []
        etc = str(self.etc).encode()
        for d in pathlib.Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
                comm = (d / "comm").read_text().strip()
            except OSError:
                continue
            if argv and argv[0].endswith(b"/" + daemon.encode()) and etc in argv:
                if helpers or comm == daemon[:15]:
                    found.append(int(d.name))
        return found

    def mbox(self, user):
        p = self.mail_spool / user
        return p.read_bytes() if p.exists() else b""


def wake_pickup(inst):
    """Wake the instance's pickup the way postdrop does: a connection to public/pickup and one byte."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(inst.spool / "public" / "pickup"))
        try:
            s.sendall(b"W")
        except (BrokenPipeError, ConnectionResetError):
            # The side that accepted (the master, or a pickup on its way out) may close before the
            # byte arrives: the connection itself was the wakeup.
            pass


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:  # gone between kill() and the read (ENOENT or ESRCH)
        return False



class JournalCapture:
    """A stand-in journal: commands wrapped by argv() run in a private mount namespace whose
    /run/systemd/journal/socket is our socket, so their sd_journal_send entries land here (the
    processes they start, such as a whole instance, stay in that namespace)."""

    def __init__(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="postd-journal-", dir="/tmp")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(f"{self.dir}/socket")
        self.sock.setblocking(False)
        # Daemons that dropped privileges send to it too, as to the real journal's socket.
        os.chmod(self.dir, 0o755)
        os.chmod(f"{self.dir}/socket", 0o666)
        self.got = []

    def argv(self, *argv):
        script = ("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && "
                  f"mount --bind {self.dir} /run/systemd/journal && exec \"$@\"")
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *map(str, argv)]

    def entries(self):
        """Every entry received so far, each a dict of its fields (simple "NAME=value" lines only,
        which is what postd sends)."""
        for _ in range(100000):
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            self.got.append(dict(line.split("=", 1) for line in data.decode(errors="replace").splitlines()
                                 if "=" in line))
        return list(self.got)

    def wait(self, pred, timeout=20.0, what="a journal entry"):
        """The first entry for which pred(entry) is true."""
        return wait_for(lambda: next((e for e in self.entries() if pred(e)), None), timeout, what)

    def close(self):
        self.sock.close()
        subprocess.run(["rm", "-rf", self.dir], check=False)


def run_with_journal(argv, input=None, env=None, timeout=30):
    """Run argv under a JournalCapture; returns (CompletedProcess, entries)."""
    j = JournalCapture()
    try:
        full_env = dict(os.environ)
        full_env.pop("POSTD_LOG", None)
        full_env.update(env or {})
        proc = subprocess.run(j.argv(*argv), input=input, capture_output=True, text=True, env=full_env,
                              timeout=timeout)
        return proc, j.entries()
    finally:
        j.close()
