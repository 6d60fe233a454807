"""conftest.py: strict mode for the systemd suites (see tests/postd_strict.py)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from postd_strict import pytest_runtest_makereport, require  # noqa: E402,F401
