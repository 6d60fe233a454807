"""postd_strict.py: strict mode of the pytest suites: in CI a missing prerequisite fails instead of skipping.

Strict when CI=true (set by CI systems) or POSTD_STRICT=1 (set by `tests/run-all.sh --strict`).
Tests state a prerequisite with require(cond, reason); the conftests of tests/integration and
tests/systemd also install the report hook below, so that a plain pytest.skip() or skipif mark
left anywhere still fails a strict run rather than letting a green line overstate what ran.
"""
import os

import pytest


def strict():
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("POSTD_STRICT") == "1"


def require(cond, reason):
    """Skip the test (fail it in strict mode) unless cond holds; reason names what is missing."""
    if cond:
        return
    if strict():
        pytest.fail(f"strict mode (CI=true or POSTD_STRICT=1): a prerequisite is missing: {reason}",
                    pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.skipped or hasattr(rep, "wasxfail"):
        return
    if not strict():
        # A skip by require() is reported at the test, not at the line above that raised it.
        if isinstance(rep.longrepr, tuple) and rep.longrepr[0].endswith("postd_strict.py"):
            rep.longrepr = (item.location[0], item.location[1] + 1, rep.longrepr[2])
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    rep.outcome = "failed"
    rep.longrepr = f"strict mode (CI=true or POSTD_STRICT=1) forbids skipping: {reason}"
