"""tests/netfault.py's FaultProxy closes cleanly: closed with connections still open
through it (pumps waiting to read, idle watches sleeping), it waits for their tasks to
end before its loop stops, so none is destroyed pending when the proxy is collected
("Task was destroyed but it is pending!" for ``_idle_watch`` at teardown)."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket

import pytest

from tests.netfault import FaultProxy

CONNECTIONS = 5  # main's close() left tasks pending in 98 closes of 100 with 5 open


def test_a_proxy_closed_with_open_connections_leaves_no_task_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with contextlib.ExitStack() as stack, caplog.at_level(logging.ERROR, logger="asyncio"):
        upstream = stack.enter_context(socket.socket())
        upstream.bind(("127.0.0.1", 0))
        upstream.listen(CONNECTIONS)
        for _ in range(3):
            proxy = FaultProxy(upstream.getsockname()[1], idle_cut=60)
            for _ in range(CONNECTIONS):
                client = stack.enter_context(
                    socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
                )
                served = stack.enter_context(upstream.accept()[0])
                served.settimeout(5)
                client.sendall(b"x")
                assert served.recv(1) == b"x"  # its pumps and idle watch are under way
            proxy.close()
            del proxy
            gc.collect()  # a task destroyed pending is reported here
    pending = [r.getMessage() for r in caplog.records if "pending" in r.getMessage()]
    assert pending == []
