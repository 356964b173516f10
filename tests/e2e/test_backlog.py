"""``anywire serve --backlog N``: the listening socket's accept queue, read back from the
kernel (``ss``: a listening socket's Send-Q is its backlog). A reconnect storm connects
every client twice within seconds; past the queue the kernel drops the connection and
TCP retransmits it 1 s, 3 s, 7 s later, while a longer queue holds connections whose
clients have given up (docs/perf/storm-round3.md: 4096 showed no gain)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from anywire.server.workers import BACKLOG

from .conftest import start_server


def _backlog(port: int) -> int:
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.split()
    return int(out[2])  # State Recv-Q Send-Q ...


def _somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


pytestmark = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")


def test_the_backlog_is_a_setting_of_serve() -> None:
    server = start_server({}, args=("--backlog", "64"))
    try:
        assert _backlog(server.port) == 64
    finally:
        server.stop()


def test_the_default_backlog_is_uvicorns() -> None:
    server = start_server({})
    try:
        assert _backlog(server.port) == min(BACKLOG, _somaxconn()) == 2048
    finally:
        server.stop()
