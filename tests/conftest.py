"""Session-wide checks: the programs the collected tests start must be installed.

Without them a run ends in dozens of errors (``PermissionError: 'redis-server'``,
``spawn /usr/bin/chromium EACCES``) far from the cause; this stops it before the first
test with one line naming every missing tool (:mod:`tests.tools`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import NEEDS, missing, missing_line

TESTS = Path(__file__).resolve().parent


def pytest_collection_finish(session: pytest.Session) -> None:
    needed: set[str] = set()
    for item in session.items:
        try:
            top = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        needed.update(NEEDS.get(top, ()))
    absent = missing(needed)
    if absent:
        pytest.exit(missing_line(absent), returncode=pytest.ExitCode.USAGE_ERROR)
