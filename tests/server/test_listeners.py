"""The listening sockets of ``anywire serve --workers N`` (anywire/server/workers.py)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from anywire.server.workers import listeners

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux SO_REUSEPORT")


@linux
def test_one_socket_per_worker_on_one_port() -> None:
    socks = listeners("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(socks) == 3 and len(ports) == 1 and 0 not in ports
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
        assert all(s.get_inheritable() for s in socks)
    finally:
        for s in socks:
            s.close()


@linux
def test_a_port_taken_by_another_program_is_an_error_and_leaks_nothing() -> None:
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    before = len(os.listdir("/proc/self/fd"))
    try:
        with pytest.raises(OSError):
            listeners("127.0.0.1", other.getsockname()[1], 2)
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        other.close()
