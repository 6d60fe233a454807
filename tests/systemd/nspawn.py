"""nspawn.py: what the systemd tests share: harness.sh calls, a running container (Box), bounded waits,
and a container booted with the build's `meson install` copied in."""
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from postd_strict import require

HERE = pathlib.Path(__file__).resolve().parent
HARNESS = HERE / "harness.sh"
ROOT = HERE.parents[1]
BUILD = pathlib.Path(os.environ.get("POSTD_BUILD_DIR", ROOT / "build"))
STEP_TIMEOUT = 120


def harness(*args, env, check=True, timeout=STEP_TIMEOUT, input=None):
    proc = subprocess.run([str(HARNESS), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          input=input)
    if check and proc.returncode != 0:
        pytest.fail(f"harness.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(fn, what, limit=20):
    """Poll fn until it returns something true, at most limit seconds."""
    deadline = time.monotonic() + limit
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit}s waiting for {what}")
        time.sleep(0.1)


class Box:
    """The running container; box(script) runs sh -c script inside it."""

    def __init__(self, env):
        self.env = env
        self.times = {}

    def __call__(self, script, check=True, timeout=STEP_TIMEOUT):
        proc = harness("exec", "sh", "-c", script, env=self.env, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"in container: {script}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def write(self, path, text):
        harness("exec", "sh", "-c", f"cat >{path}", env=self.env, input=text)

    def out(self, script):
        return self(script).stdout

    def show(self, unit, *props):
        out = self.out(f"systemctl show -p {','.join(props)} {unit}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def active(self, unit):
        return self(f"systemctl is-active {unit}", check=False).stdout.strip()

    def main_pid(self, unit):
        return int(self.out(f"systemctl show -p MainPID --value {unit}").strip() or 0)

    def journal(self, *args):
        """Journal entries (dicts) of this boot matching journalctl args."""
        out = self.out("journalctl -b --no-pager -o json " + " ".join(args))
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def ready_container_env(name):
    """The environment for harness.sh of a container named after name on its own loopback-only network,
    once the harness says this machine can run it (else the test is skipped) and its image is set up."""
    env = dict(os.environ)
    env["POSTD_NSPAWN_NAME"] = f"postd-{name}-{os.getpid()}"
    env["POSTD_NSPAWN_NET"] = "private"
    proc = harness("check", env=env, check=False)
    require(proc.returncode != 77, proc.stderr.strip() or "harness.sh check: this machine cannot run systemd-nspawn")
    harness("setup", env=env, timeout=1500)
    return env


@contextlib.contextmanager
def installed_box(tmp_path_factory, name, box_class=Box, before_install=None):
    """A container on its own loopback-only network with the build's `meson install` copied in; stopped
    afterwards unless POSTD_NSPAWN_KEEP is set (debugging)."""
    t0 = time.monotonic()
    env = ready_container_env(name)
    if not (BUILD / "build.ninja").exists():
        pytest.fail(f"no build in {BUILD} (set POSTD_BUILD_DIR)")
    if before_install:
        before_install()
    # The container has no compiler: meson install runs here into a DESTDIR, which is copied in as is.
    dest = tmp_path_factory.mktemp("destdir")
    inst = subprocess.run(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--quiet", "--destdir", str(dest)],
                          capture_output=True, text=True, timeout=STEP_TIMEOUT)
    if inst.returncode != 0:
        pytest.fail(f"meson install failed:\n{inst.stdout}\n{inst.stderr}")
    t_install = time.monotonic() - t0
    harness("boot", "--copy", str(dest), env=env)
    b = box_class(env)
    b.times["install"] = t_install
    b.times["boot"] = time.monotonic() - t0 - t_install
    try:
        yield b
    finally:
        if os.environ.get("POSTD_NSPAWN_KEEP"):
            print(f"container {env['POSTD_NSPAWN_NAME']} left running")
        else:
            harness("stop", env=env)
        shutil.rmtree(dest, ignore_errors=True)
