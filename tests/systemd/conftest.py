"""conftest.py: strict mode for the systemd suites (see tests/postd_strict.py), and the integration
helpers (BIN, run, tool) under the name `conftest`, which mailinstance.py imports them by."""
import importlib.util
import pathlib
import sys

TESTS = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from postd_strict import pytest_runtest_makereport, require  # noqa: E402,F401

_spec = importlib.util.spec_from_file_location("postd_integration_conftest", TESTS / "integration" / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)
BIN, BUILD, ROOT = _integration.BIN, _integration.BUILD, _integration.ROOT
run, tool = _integration.run, _integration.tool
