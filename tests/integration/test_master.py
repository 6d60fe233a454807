"""test_master.py: the master and postfix start/stop/status/reload on real instances side by side, with a test daemon."""
import os
import pathlib
import re
import signal
import socket
import time

import pytest

from conftest import BIN, require, run, tool


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


from mailinstance import wait_for  # noqa: E402


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:  # gone between kill() and the read (ENOENT or ESRCH)
        return False


def children_of(pid):
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.split(")")[-1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def listener_inode(port):
    """Inode of the IPv4 listening socket on 127.0.0.1:port, from /proc/net/tcp, or None."""
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(":%04X" % port) and f[3] == "0A":
            return f[9]
    return None


class Instance:
    def __init__(self, root: pathlib.Path, name: str, port: int, master_cf=None, main_extra=""):
        self.root = root
        self.name = name
        self.port = port
        self.etc = root / "etc"
        self.spool = root / "spool"
        self.libexec = root / "libexec"
        self.log = root / "maillog"
        for d in (self.etc, self.libexec):
            d.mkdir(parents=True)
        # daemon_directory holds the master and the test daemon, as /usr/libexec/postfix would
        for prog in ("master", "echo-service"):
            (self.libexec / prog).symlink_to(tool(prog))
        (self.etc / "main.cf").write_text(
            f"queue_directory = {self.spool}\n"
            f"daemon_directory = {self.libexec}\n"
            f"syslog_name = {name}\n"
            "mail_owner = nobody\n"
            "setgid_group = nogroup\n"
            "inet_interfaces = 127.0.0.1\n"
            "inet_protocols = ipv4\n"
            "service_throttle_time = 3s\n" + main_extra)
        if master_cf is None:
            master_cf = f"{port} inet n n n - 4 echo-service\necho unix n n n - - echo-service\n"
        (self.etc / "master.cf").write_text(master_cf)
        # POSTD_NO_SYSTEMCTL: postfix start runs the master itself even on a host with systemd as PID 1.
        self.env = {"POSTD_LOG": f"file:{self.log}", "POSTD_NO_SYSTEMCTL": "1"}

    def postfix(self, *args, timeout=60):
        env = dict(self.env)
        return run("postfix", "-c", self.etc, *args, env=env, timeout=timeout)

    def master_pid(self):
        try:
            return int((self.spool / "pid" / "master.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def logtext(self):
        return self.log.read_text() if self.log.exists() else ""

    def ask(self, port=None, timeout=5):
        with socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
        service, pid = data.decode().split()
        return service, int(pid)

    def cleanup(self):
        pid = self.master_pid()
        if pid and pid_alive(pid):
            self.postfix("stop", timeout=90)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def make_instance(tmp_path, monkeypatch):
    # The environment of the tests must not send the master's logs to a journal.
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    made = []

    def make(name, **kw):
        inst = Instance(tmp_path / name, name, kw.pop("port", None) or free_port(), **kw)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.cleanup()


def test_two_instances_side_by_side(make_instance):
    a = make_instance("postfix-a")
    b = make_instance("postfix-b")
    for inst in (a, b):
        r = inst.postfix("start")
        assert r.returncode == 0, r.stderr
        assert f"{inst.name}/postfix-script: starting the Postfix mail system" in r.stderr
    for inst in (a, b):
        r = inst.postfix("status")
        assert r.returncode == 0
        pid = inst.master_pid()
        assert r.stderr == f"{inst.name}/postfix-script: the Postfix mail system is running: PID: {pid}\n"
        assert pid_alive(pid)
    # each instance answers on its own port with its own service
    sa, pa = a.ask()
    sb, pb = b.ask()
    assert (sa, sb) == (str(a.port), str(b.port))
    assert pa != pb
    assert pa in children_of(a.master_pid()) and pb in children_of(b.master_pid())
    # a unix service of the instance, in its own queue directory
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(a.spool / "public" / "echo"))
        assert s.recv(100).decode().startswith("echo ")
    assert "daemon started" in a.logtext()
    assert f"{a.name}/master[" in a.logtext()

    # stopping one leaves the other running
    master_a = a.master_pid()
    kids_a = children_of(master_a)
    r = a.postfix("stop")
    assert r.returncode == 0, r.stderr
    assert not pid_alive(master_a)
    for k in kids_a:
        wait_for(lambda: not pid_alive(k), 10, f"child {k} of the stopped master to exit")
    r = a.postfix("status")
    assert r.returncode == 1
    assert r.stderr == f"{a.name}/postfix-script: the Postfix mail system is not running\n"
    with pytest.raises(ConnectionRefusedError):
        a.ask()
    assert b.postfix("status").returncode == 0
    assert b.ask()[0] == str(b.port)


def test_second_start_is_refused(make_instance):
    a = make_instance("postfix-c")
    assert a.postfix("start").returncode == 0
    pid = a.master_pid()
    r = a.postfix("start")
    assert r.returncode == 1
    assert "fatal: the Postfix mail system is already running" in r.stderr
    assert a.master_pid() == pid and pid_alive(pid)
    # and stop of a stopped instance says so
    assert a.postfix("stop").returncode == 0
    r = a.postfix("stop")
    assert r.returncode == 1
    assert "fatal: the Postfix mail system is not running" in r.stderr


def test_master_service_disable_inet_is_loud(make_instance):
    a = make_instance("postfix-d", main_extra="master_service_disable = inet\n")
    r = a.postfix("start")
    assert r.returncode == 0, r.stderr
    assert listener_inode(a.port) is None
    with pytest.raises(ConnectionRefusedError):
        a.ask()
    log = a.logtext()
    assert re.search(rf'warning: service "{a.port}/inet" .*is disabled by master_service_disable = inet', log), log
    # the unix service still works
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(a.spool / "public" / "echo"))
        assert s.recv(100).startswith(b"echo ")


def test_address_in_use_is_a_clear_fatal(make_instance):
    a = make_instance("postfix-e")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", a.port))
        squatter.listen()
        r = a.postfix("start")
        assert r.returncode == 1
        assert "did not start" in r.stderr
        log = a.logtext()
        assert (f'fatal: bind 127.0.0.1 port {a.port}: Address already in use (service "{a.port}/inet", '
                "master.cf line 1)") in log, log
        assert a.postfix("status").returncode == 1


def test_crashing_service_is_throttled(make_instance, tmp_path):
    port = free_port()
    a = make_instance("postfix-f", port=port, master_cf=f"{port} inet n n n - - echo-service crash\n")
    assert a.postfix("start").returncode == 0
    # the connection waits in the backlog while every start of the daemon fails
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        wait_for(lambda: "bad command startup -- throttling" in a.logtext(), 10, "throttling", interval=0.02)
        first = time.monotonic()
        log = a.logtext()
        # echo-service crash calls abort(): SIGABRT, 6
        assert re.search(rf"warning: process {re.escape(str(a.libexec))}/echo-service pid \d+ killed by signal 6\n",
                         log), log
        assert f"warning: {a.libexec}/echo-service: bad command startup -- throttling" in log
        # Throttled: the next attempt (the positive signal) comes only after service_throttle_time (3 s).
        # Seen up to one poll late, the first line makes the measured pause at most 0.02 s short.
        wait_for(lambda: a.logtext().count("bad command startup") >= 2, 10, "a second attempt after the pause",
                 interval=0.02)
        pause = time.monotonic() - first
        assert 2.5 <= pause <= 8, pause
    assert pid_alive(a.master_pid())


def test_reload_keeps_listening_socket(make_instance):
    a = make_instance("postfix-g")
    assert a.postfix("start").returncode == 0
    master = a.master_pid()
    inode = listener_inode(a.port)
    assert inode
    _, child = a.ask()
    r = a.postfix("reload")
    assert r.returncode == 0, r.stderr
    assert f"{a.name}/postfix-script: refreshing the Postfix mail system" in r.stderr
    wait_for(lambda: "reload -- version" in a.logtext(), 10, "the reload log line")
    # old processes were told to go; new connections get a new process on the same socket
    wait_for(lambda: not pid_alive(child), 10, "the old child to exit")
    _, child2 = a.ask()
    assert child2 != child
    assert listener_inode(a.port) == inode
    assert a.master_pid() == master


def test_foreground_start_fg_and_sigterm(make_instance):
    import subprocess
    a = make_instance("postfix-h")
    env = dict(os.environ, **a.env)
    proc = subprocess.Popen([tool("postfix"), "-c", str(a.etc), "start-fg"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: a.postfix("status").returncode == 0, 10, "start-fg to run")
        assert a.master_pid() == proc.pid  # start-fg execs the master in place
        assert a.ask()[0] == str(a.port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert a.postfix("status").returncode == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def socket_activate():
    import shutil
    path = shutil.which("systemd-socket-activate")
    require(path, "systemd-socket-activate is not installed (apt-get install systemd)")
    return path


def make_queue(inst):
    """The queue layout, as postfix start creates it (under systemd a unit's ExecStartPre would)."""
    assert inst.postfix("start").returncode == 0
    assert inst.postfix("stop").returncode == 0


def test_sockets_from_systemd(make_instance):
    import subprocess
    a = make_instance("postfix-i")
    env = dict(os.environ, **a.env)
    # The listener is systemd's (matched by FileDescriptorName= = service name): the master binds nothing.
    make_queue(a)
    proc = subprocess.Popen([socket_activate(), "-E", "POSTD_LOG", "-l", f"127.0.0.1:{a.port}",
                             f"--fdname={a.port}", tool("master"), "-c", str(a.etc), "-d"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: listener_inode(a.port), 10, "systemd-socket-activate to listen")
        # systemd-socket-activate starts the master on the first connection, which then waits in the backlog
        assert a.ask(timeout=10)[0] == str(a.port)
        assert a.postfix("status").returncode == 0
        assert a.master_pid() == proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        # the master replaced systemd-socket-activate (exec) and exits cleanly on SIGTERM
        assert proc.wait(timeout=60) == 0


def test_systemd_socket_missing_for_a_service_is_refused(make_instance):
    import subprocess
    other = free_port()
    a = make_instance("postfix-j", master_cf=None)
    (a.etc / "master.cf").write_text(f"{a.port} inet n n n - - echo-service\n"
                                     f"{other} inet n n n - - echo-service\n")
    env = dict(os.environ, **a.env)
    make_queue(a)
    proc = subprocess.Popen([socket_activate(), "-E", "POSTD_LOG", "-l", f"127.0.0.1:{a.port}", tool("master"),
                             "-c", str(a.etc), "-d"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the first connection makes systemd-socket-activate start the master
        wait_for(lambda: listener_inode(a.port), 10, "systemd-socket-activate to listen")
        with socket.create_connection(("127.0.0.1", a.port), timeout=5):
            assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert (f'fatal: service "{other}/inet" (master.cf line 2) has no listening socket from systemd'
            in a.logtext()), a.logtext()


def cmdline(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def test_process_limit_and_on_demand_spawning(make_instance):
    port = free_port()
    # maxproc 2, and each process keeps its one connection until the client closes it; the unix
    # service is the probe that shows the master has handled the third connection's event
    a = make_instance("postfix-k", port=port, master_cf=f"{port} inet n n n - 2 echo-service hold\n"
                                                        "echo unix n n n - - echo-service\n")
    assert a.postfix("start").returncode == 0
    master = a.master_pid()
    assert children_of(master) == []  # nothing runs before there is work
    c1 = socket.create_connection(("127.0.0.1", port), timeout=5)
    c2 = socket.create_connection(("127.0.0.1", port), timeout=5)
    p1 = int(c1.recv(100).split()[1])
    p2 = int(c2.recv(100).split()[1])
    assert p1 != p2
    c3 = socket.create_connection(("127.0.0.1", port), timeout=5)
    # A later connection to another service is answered only after the master's event loop has
    # seen c3 waiting: had it spawned for c3, that process would exist by now.
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(10)
        probe.connect(str(a.spool / "public" / "echo"))
        probe_pid = int(probe.recv(100).split()[1])
    assert sorted(children_of(master)) == sorted([p1, p2, probe_pid])
    c3.setblocking(False)
    with pytest.raises(BlockingIOError):
        c3.recv(100)  # both processes are busy and the limit is 2
    c1.close()
    c3.settimeout(10)
    assert int(c3.recv(100).split()[1]) == p1  # the freed process takes the waiting connection
    assert sorted(p for p in children_of(master) if p != probe_pid) == sorted([p1, p2])
    c2.close()
    c3.close()


def test_max_use_and_max_idle(make_instance):
    port = free_port()
    # maxproc 1: the second connection can only go to the first process (however soon the master
    # learns that it is free again), so max_use is what ends it.
    a = make_instance("postfix-l", port=port, main_extra="max_use = 2\nmax_idle = 1s\n",
                      master_cf=f"{port} inet n n n - 1 echo-service\n")
    assert a.postfix("start").returncode == 0
    _, p1 = a.ask()
    _, p1b = a.ask()
    assert p1 == p1b
    wait_for(lambda: not pid_alive(p1), 10, "the process to exit after max_use connections")
    _, p2 = a.ask()
    assert p2 != p1
    # max_idle: an idle process goes away by itself after about a second
    wait_for(lambda: not pid_alive(p2), 10, "the idle process to exit")
    assert "warning" not in a.logtext()  # normal exits are not crashes


def test_wakeup_starts_a_fifo_service(make_instance):
    port = free_port()
    a = make_instance("postfix-m", port=port,
                      master_cf=f"{port} inet n n n - - echo-service\npickup fifo n n n 1 1 echo-service\n")
    assert a.postfix("start").returncode == 0
    fifo = a.spool / "public" / "pickup"
    assert fifo.is_fifo()
    master = a.master_pid()
    # the master writes to the fifo every second; the readable fifo makes it start the service
    pid = wait_for(lambda: next((p for p in children_of(master) if b"pickup" in cmdline(p)), None), 10,
                   "the pickup service to be started by its wakeup")
    assert cmdline(pid)[1:7] == [b"-c", str(a.etc).encode(), b"-n", b"pickup", b"-t", b"fifo"]


def test_reload_with_a_broken_config_keeps_running(make_instance):
    a = make_instance("postfix-n")
    assert a.postfix("start").returncode == 0
    master = a.master_pid()
    saved = (a.etc / "master.cf").read_text()
    (a.etc / "master.cf").unlink()
    assert a.postfix("reload").returncode == 0
    wait_for(lambda: "reload failed" in a.logtext(), 10, "the failed reload to be logged")
    assert "warning: reload failed: the previous configuration stays in effect" in a.logtext()
    assert pid_alive(master)
    assert a.ask()[0] == str(a.port)
    (a.etc / "master.cf").write_text(saved)


def test_socket_activation_refuses_a_service_without_socket(tmp_path, monkeypatch):
    """Handed sockets by systemd, the master must not bind the rest itself: it names the service."""
    from mailinstance import MailInstance
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    given, missing = free_port(), free_port()
    inst = MailInstance(tmp_path / "sa", "postfix-sa", port=given,
                        master_cf=f"{given} inet n - n - - smtpd\n{missing} inet n - n - - smtpd\n")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", given))
    listener.listen(8)

    env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES=str(given), POSTD_LOG=f"file:{inst.log}")
    import subprocess
    # The shell puts the socket at fd 3, as systemd would, and becomes postfix start-fg, which
    # creates the queue and becomes the master: the same PID all along, as under systemd.
    proc = subprocess.run(["bash", "-c", f'LISTEN_PID=$$ exec "$0" -c "$1" start-fg 3<&{listener.fileno()}',
                           tool("postfix"), str(inst.etc)], pass_fds=(listener.fileno(),), env=env, capture_output=True, text=True,
                          timeout=30)
    listener.close()
    assert proc.returncode != 0
    text = proc.stderr + inst.logtext()
    assert f'service "{missing}/inet" (master.cf line 2) has no listening socket from systemd' in text, text
