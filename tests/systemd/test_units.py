"""test_units.py: postd's units, generator and postmulti under a real systemd (PID 1 in nspawn)."""
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest
from nspawn import ready_container_env

HERE = pathlib.Path(__file__).resolve().parent
HARNESS = HERE / "harness.sh"
ROOT = HERE.parents[1]
BUILD = pathlib.Path(os.environ.get("POSTD_BUILD_DIR", ROOT / "build"))
PORT = 2525  # private network: the container has its own loopback, the host's 2525 stays free


def harness(*args, env, check=True, timeout=300, input=None):
    proc = subprocess.run([str(HARNESS), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          input=input)
    if check and proc.returncode != 0:
        pytest.fail(f"harness.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def build_paths():
    """Install paths of this build, from its generated unit and header."""
    unit = (BUILD / "units/postfix@.service").read_text()
    command_dir = re.search(r"^ExecStart=(\S+)/postfix start-fg$", unit, re.M).group(1)
    header = (BUILD / "postd-build.h").read_text()
    daemon_dir = re.search(r'POSTD_DAEMON_DIR "([^"]+)"', header).group(1)
    pc = lambda var, default: (subprocess.run(["pkg-config", f"--variable={var}", "systemd"],
                                              capture_output=True, text=True).stdout.strip() or default)
    return {"command": command_dir, "daemon": daemon_dir,
            "units": pc("systemdsystemunitdir", "/usr/lib/systemd/system"),
            "generators": pc("systemdsystemgeneratordir", "/usr/lib/systemd/system-generators"),
            "sysusers": pc("sysusersdir", "/usr/lib/sysusers.d"),
            "catalog": pc("catalogdir", "/usr/lib/systemd/catalog")}


def stage(dest):
    """A DESTDIR with only what these tests need (meson install would also need every other role built)."""
    p = build_paths()
    files = {
        f"{p['command']}/postfix": BUILD / "src/postfix",
        f"{p['command']}/postmulti": BUILD / "src/postmulti",
        f"{p['daemon']}/master": BUILD / "src/master",
        f"{p['daemon']}/echo-service": BUILD / "tests/echo-service",
        f"{p['generators']}/postfix-generator": BUILD / "src/postfix-generator",
        f"{p['units']}/postfix@.service": BUILD / "units/postfix@.service",
        f"{p['units']}/postfix@-.service.d/default-instance.conf": BUILD / "units/default-instance.conf",
        f"{p['units']}/postfix@.socket": ROOT / "units/postfix@.socket",
        f"{p['units']}/postfix.target": ROOT / "units/postfix.target",
        f"{p['sysusers']}/postfix.conf": ROOT / "units/postfix.sysusers",
        f"{p['catalog']}/postfix.catalog": ROOT / "units/postfix.catalog",
    }
    for rel, src in files.items():
        if not src.exists():
            pytest.fail(f"{src} is not built")
        dst = dest / rel.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return p


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    env = ready_container_env("units")
    dest = tmp_path_factory.mktemp("destdir")
    paths = stage(dest)
    t0 = time.monotonic()
    harness("boot", "--copy", str(dest), env=env)
    print(f"boot+copy: {time.monotonic() - t0:.2f}s")

    def sh(script, check=True):
        proc = harness("exec", "sh", "-c", script, env=env, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"in container: {script}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    sh.env = env
    sh.paths = paths
    try:
        yield sh
    finally:
        harness("stop", env=env)


def wait_for(fn, what, limit=15):
    deadline = time.monotonic() + limit
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.2)


def test_verify_and_lifecycle(box):
    t0 = time.monotonic()
    pm = box.paths["command"] + "/postmulti"
    daemon = box.paths["daemon"]
    # Accounts from the shipped sysusers file.
    box("systemd-sysusers && getent passwd postfix && getent group postdrop")
    # A default instance (no inet service: port 25 may be taken on the host) and postfix-dept1 on 2525.
    box(f"mkdir -p /etc/postfix && printf 'inet_interfaces = loopback-only\\ninet_protocols = ipv4\\n"
        f"daemon_directory = {daemon}\\n' >/etc/postfix/main.cf && : >/etc/postfix/master.cf")
    box(f"{pm} -e init && {pm} -I postfix-dept1 -e create inet_interfaces=loopback-only inet_protocols=ipv4")
    box(f"printf '{PORT} inet n - n - - echo-service\\n' >/etc/postfix-dept1/master.cf")
    box("systemctl daemon-reload")
    # Created disabled and with master_service_disable = inet: no listener, not wanted by the target.
    out = box("systemctl cat postfix@dept1.service").stdout
    assert "Environment=MAIL_CONFIG=/etc/postfix-dept1" in out
    assert "Requires=postfix@dept1.socket" not in out
    box("sed -i '/^master_service_disable/d' /etc/postfix-dept1/main.cf")
    box(f"{pm} -i postfix-dept1 -e enable")  # runs systemctl daemon-reload itself
    out = box("systemctl cat postfix@dept1.socket").stdout
    assert f"ListenStream=127.0.0.1:{PORT}" in out and f"FileDescriptorName={PORT}" in out
    assert box("systemctl show -P Wants postfix.target").stdout.split().count("postfix@dept1.service") == 1

    # systemd-analyze verify of the installed units with the generated drop-ins: no output at all.
    leader = harness("exec", "cat", "/proc/1/comm", env=box.env)  # proves the container runs
    assert leader.stdout.strip() == "systemd"
    proc = box("systemd-analyze --generators=yes verify postfix@dept1.service postfix@dept1.socket postfix@-.service "
               "postfix.target 2>&1", check=False)
    # (the generator's own notes on stderr are not verify's findings)
    findings = [l for l in proc.stdout.splitlines() if not l.startswith("postfix-generator: ")]
    assert proc.returncode == 0 and findings == [], proc.stdout

    # Socket activation: the socket alone listens; the first connection starts the instance.
    box("systemctl start postfix@dept1.socket")
    assert box("systemctl is-active postfix@dept1.service", check=False).stdout.strip() == "inactive"
    out = box("systemctl list-sockets --no-legend postfix@dept1.socket").stdout
    assert f"127.0.0.1:{PORT}" in out and "postfix@dept1.service" in out
    greeting = box(f"python3 -c 'import socket; s=socket.create_connection((\"127.0.0.1\", {PORT}), 5); "
                   f"print(s.recv(100).decode())'").stdout
    assert re.fullmatch(rf"{PORT} \d+\s*", greeting), greeting  # echo-service: "SERVICE PID"
    wait_for(lambda: box("systemctl is-active postfix@dept1.service", check=False).stdout.strip() == "active",
             "postfix@dept1 to be active")
    show = box("systemctl show -p Type,ActiveState,StatusText,MainPID postfix@dept1.service").stdout
    assert "Type=notify" in show and "ActiveState=active" in show and "MainPID=0" not in show, show
    # Its lines are tagged with the instance, and only there.
    wait_for(lambda: "daemon started" in box("journalctl -b -o cat -t postfix-dept1/master").stdout,
             "the master's start line")
    assert "daemon started" in box("journalctl -b -o cat -u postfix@dept1.service").stdout
    # Reload keeps accepting.
    box("systemctl reload postfix@dept1.service")
    box(f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {PORT}), 5).recv(10)'")
    # postfix.target acts on all enabled instances; stop leaves no process and no listener behind.
    box("systemctl stop postfix.target postfix@dept1.service")
    assert box("systemctl is-active postfix@dept1.socket", check=False).stdout.strip() == "inactive"
    # (the bracket keeps pgrep from matching the sh -c running it)
    box(f"! pgrep -af '{daemon}/[m]aster|{daemon}/[e]cho-service'")
    box("systemctl start postfix.target")
    wait_for(lambda: box("systemctl is-active postfix@dept1.service", check=False).stdout.strip() == "active",
             "postfix.target to start postfix@dept1")
    box("systemctl stop postfix.target")
    assert box("systemctl is-active postfix@dept1.service", check=False).stdout.strip() == "inactive"
    print(f"lifecycle: {time.monotonic() - t0:.2f}s")
