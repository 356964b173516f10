"""An SSE stream's cost on a real server (issue #17): one task besides its request's,
keepalive comments without a ping task, and a client that leaves ends its stream's
tasks at once (the disconnect listener), not at the next write."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from .conftest import Server, make_token, start_server
from .raw import RawConn

STREAMS = 10


async def _tasks(url: str) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(url + "/anywire/metrics")).json()["asyncio_tasks"])


@pytest.fixture(scope="module")
def slow_heartbeat() -> Iterator[Server]:
    """Keepalives every 15 s and heartbeats every 30 s: neither can notice a gone
    client within the test's bound, only the disconnect listener can."""
    srv = start_server({"AW_PING_INTERVAL": "30", "AW_PING_TIMEOUT": "30"})
    yield srv
    srv.stop()


async def test_streams_hold_two_tasks_each_and_free_them_when_the_client_leaves(
    slow_heartbeat: Server,
) -> None:
    server = slow_heartbeat
    baseline = await _tasks(server.url)
    conns = [RawConn(server.url, "sse", make_token(f"sse-tasks-{i}")) for i in range(STREAMS)]
    try:
        for conn in conns:
            assert (await conn.open())["t"] == "hello"
        # The request's task and the disconnect listener (sse-starlette's task group
        # held four more per stream); a little slack for the server's own timers.
        assert await _tasks(server.url) - baseline <= 2 * STREAMS + 3
    finally:
        for conn in conns:
            await conn.close()
    # Gone clients: their streams end well before any keepalive or heartbeat would
    # have noticed.
    async with asyncio.timeout(5):
        while await _tasks(server.url) > baseline + 2:
            await asyncio.sleep(0.05)


async def test_an_idle_stream_gets_keepalive_comments(server: Server) -> None:
    """The comments come from the stream itself now (no ping task): still on schedule."""
    conn = RawConn(server.url, "sse", make_token("sse-keepalive"))
    try:
        await conn.open()
        async with asyncio.timeout(10):
            while len(conn.comments) < 2:
                await asyncio.sleep(0.05)
        gap = conn.comments[1] - conn.comments[0]
        assert 0.5 <= gap <= 3.0, conn.comments
    finally:
        await conn.close()
