# test_harness.py: the nspawn harness itself works: setup, boot, selftest (socket activation, journal), stop.
import os
import pathlib
import subprocess
import time

import pytest
from conftest import require

HARNESS = pathlib.Path(__file__).resolve().parent / "harness.sh"
# Generous bounds: setup from scratch downloads a Debian rootfs (about a minute on a good mirror).
SETUP_TIMEOUT = 1500
STEP_TIMEOUT = 300


def harness(*args, env, timeout=STEP_TIMEOUT, check=True):
    start = time.monotonic()
    proc = subprocess.run([str(HARNESS), *args], env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - start
    print(f"--- harness.sh {' '.join(args)}: exit {proc.returncode} in {elapsed:.2f}s")
    print(proc.stdout, end="")
    print(proc.stderr, end="")
    if check and proc.returncode != 0:
        pytest.fail(f"harness.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc, elapsed


@pytest.fixture
def env():
    e = dict(os.environ)
    # A name of its own, so a developer's container (default name) is never touched by the test.
    e["POSTD_NSPAWN_NAME"] = f"postd-pytest-{os.getpid()}"
    # Its own loopback: the selftest's ports can never collide with a host process (CI once lost
    # port 42526 to another process's ephemeral port).
    e["POSTD_NSPAWN_NET"] = "private"
    return e


def test_setup_boot_selftest_stop(env):
    proc, _ = harness("check", env=env, check=False)
    require(proc.returncode != 77, proc.stderr.strip() or "harness.sh check: this machine cannot run systemd-nspawn")
    assert proc.returncode == 0, proc.stderr

    _, t_setup = harness("setup", env=env, timeout=SETUP_TIMEOUT)
    _, t_boot = harness("boot", env=env)
    try:
        proc, _ = harness("exec", "systemctl", "is-system-running", env=env, check=False)
        assert proc.stdout.strip() in ("running", "degraded")
        proc, _ = harness("exec", "cat", "/proc/1/comm", env=env)
        assert proc.stdout.strip() == "systemd"
        # exec passes the exit status through, so tests can assert on failing commands too.
        proc, _ = harness("exec", "sh", "-c", "exit 3", env=env, check=False)
        assert proc.returncode == 3
        proc, _ = harness("selftest", env=env)
        assert "selftest passed" in proc.stdout
        assert "FAIL" not in proc.stdout
    finally:
        _, t_stop = harness("stop", env=env)
    proc, _ = harness("exec", "true", env=env, check=False)
    assert proc.returncode != 0, "container still reachable after stop"
    print(f"timings: setup {t_setup:.1f}s, boot {t_boot:.1f}s, stop {t_stop:.1f}s")


def test_boot_with_destdir(env, tmp_path):
    """A DESTDIR tree appears at its paths, bound (seen live from the host) or copied."""
    proc, _ = harness("check", env=env, check=False)
    require(proc.returncode != 77, proc.stderr.strip() or "harness.sh check: this machine cannot run systemd-nspawn")
    harness("setup", env=env, timeout=SETUP_TIMEOUT)
    dest = tmp_path / "destdir"
    (dest / "usr/libexec/postfix").mkdir(parents=True)
    (dest / "usr/libexec/postfix/marker").write_text("one\n")
    (dest / "usr/sbin").mkdir(parents=True)
    (dest / "usr/sbin/postd-marker").write_text("sbin\n")
    (dest / "lib/systemd/system").mkdir(parents=True)  # /lib is a symlink in the rootfs (merged /usr)
    (dest / "lib/systemd/system/postd-marker.service").write_text("[Service]\nExecStart=/bin/true\n")
    for mode in ("--bind", "--copy"):
        harness("boot", mode, str(dest), env=env)
        try:
            proc, _ = harness("exec", "cat", "/usr/libexec/postfix/marker", "/usr/sbin/postd-marker", env=env)
            assert proc.stdout == "one\nsbin\n"
            # The rootfs's own files next to the DESTDIR's are still there.
            harness("exec", "test", "-x", "/usr/sbin/nologin", env=env)
            proc, _ = harness("exec", "systemctl", "cat", "postd-marker.service", env=env, check=False)
            assert proc.returncode == 0 and "ExecStart=/bin/true" in proc.stdout
            (dest / "usr/libexec/postfix/marker").write_text("two\n")
            proc, _ = harness("exec", "cat", "/usr/libexec/postfix/marker", env=env)
            assert proc.stdout == ("two\n" if mode == "--bind" else "one\n")
            (dest / "usr/libexec/postfix/marker").write_text("one\n")
        finally:
            harness("stop", env=env)
