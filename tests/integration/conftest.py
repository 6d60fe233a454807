"""conftest.py: shared fixtures for postd's CLI and instance tests (binaries from $POSTD_BUILD_DIR)."""
import os
import pathlib
import shutil
import subprocess
import tempfile

import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
# require() for prerequisites; the hook makes any skip a failure in strict mode (CI=true).
from postd_strict import pytest_runtest_makereport, require  # noqa: E402,F401
BUILD = pathlib.Path(os.environ.get("POSTD_BUILD_DIR", ROOT / "build"))
BIN = BUILD / "src"
TEST_TOOLS = BUILD / "tests"  # test-only programs (qfile-dump, queue-inject, echo-service...)
BENCH_TOOLS = BUILD / "bench"  # bench programs some tests use too (fill_deferred)


def tool(name: str) -> str:
    """Absolute path of a built postd program (postconf, postmap, master, ...), test or bench tool."""
    path = BIN / name
    for other in (TEST_TOOLS / name, BENCH_TOOLS / name):
        if not path.exists() and other.exists():
            path = other
    if not path.exists():
        pytest.fail(f"{path} is not built; run ninja -C {BUILD}")
    return str(path)


def run(name, *args, input=None, env=None, check=False, timeout=30):
    """Run a built program; returns CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    full_env.pop("MAIL_CONFIG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([tool(name), *map(str, args)], input=input, capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} {args} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture
def confdir(tmp_path):
    """An empty config directory with an empty main.cf and master.cf."""
    d = tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text("")
    (d / "master.cf").write_text("")
    return d


@pytest.fixture
def mail_instance(tmp_path, monkeypatch):
    """Factory of real instances (mailinstance.MailInstance); all are stopped at teardown."""
    from mailinstance import MailInstance

    # The daemons must log to the instance's maillog, never to a journal the test runs under.
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    made = []
    # Not under tmp_path: pytest makes /tmp/pytest-of-root 0700, and the daemons that run as
    # mail_owner or as the recipient must reach the queue, the spool and the mailboxes.
    base = pathlib.Path(tempfile.mkdtemp(prefix="postd-test-", dir="/tmp"))
    os.chmod(base, 0o755)

    def make(name="postfix-test", **kw):
        inst = MailInstance(base / f"inst{len(made)}", name, **kw)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.stop()
    shutil.rmtree(base, ignore_errors=True)
