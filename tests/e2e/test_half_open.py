"""Half-open paths are noticed within ``ping_timeout`` of a send, on every transport.

The client reaches the server through a TCP proxy that, when switched to ``blackhole``,
keeps every connection open and lets nothing through (a NAT or proxy that lost the path
without a word). The heartbeat alone would take ``ping_interval + ping_timeout`` (22 s
here); a send that gets no answer at all (the server acknowledges every event within
``ack_delay``) must end the connection within ``ping_timeout`` (2 s), and the client
resumes once the path is back, with every event delivered exactly once and in order.

Each transport's client has its own proxy and user, so the three runs go side by side
(tests/together.py), each test asserting on its own run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from anywire.clients.python import Client
from tests.netfault import FaultProxy
from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token, start_server

PING_TIMEOUT = 2.0
MARGIN = 1.0  # the server's timer granularity, the loop's wake-ups, a loaded machine


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A long heartbeat and poll window (so neither notices the black hole first), a short
    ping_timeout, and a resume window that outlives the outage."""
    srv = start_server(
        {
            "AW_PING_INTERVAL": "20",
            "AW_PING_TIMEOUT": str(PING_TIMEOUT),
            "AW_POLL_WINDOW": "20",
            "AW_RESUME_WINDOW": "30",
        }
    )
    yield srv
    srv.stop()


async def _half_open(server: Server, transport: str) -> float:
    """Asserts as it goes; returns the seconds from the send to the drop."""
    proxy = FaultProxy(server.port)
    try:
        return await _through(proxy, transport)
    finally:
        proxy.close()


async def _through(proxy: FaultProxy, transport: str) -> float:
    states: list[tuple[float, str]] = []
    changed = asyncio.Event()
    client = Client(
        proxy.url,
        token=make_token(f"halfopen-{transport}"),
        transports=[transport],
        backoff_base=0.05,
        backoff_max=0.2,
    )

    @client.on_state
    def _state(state: str) -> None:
        states.append((time.monotonic(), state))
        changed.set()

    async def until_state(name: str, after: int, timeout: float) -> float:
        async with asyncio.timeout(timeout):
            while True:
                for at, state in states[after:]:
                    if state == name:
                        return at
                changed.clear()
                await changed.wait()

    await client.connect()
    try:
        for i in range(5):
            await client.emit("record", i)
        assert await client.call("recorded") == list(range(5))  # the path works
        proxy.set("blackhole")
        mark = len(states)
        sent = time.monotonic()
        await client.emit("record", 5)  # lost in the black hole; must be resent later
        lost = await until_state("reconnecting", mark, PING_TIMEOUT + MARGIN + 2)
        proxy.set("forward")
        await until_state("connected", mark, 15)
        for i in range(6, 10):
            await client.emit("record", i)
        assert await client.call("recorded", timeout=10) == list(range(10))
        return lost - sent
    finally:
        await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def half_open(server: Server) -> AsyncIterator[Together[float]]:
    together = Together(TRANSPORTS, lambda t: _half_open(server, t))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_half_open_path_is_noticed_after_a_send(
    half_open: Together[float], transport: str
) -> None:
    detected = await half_open.result(transport, 60)
    print(f"\n{transport}: half-open path noticed {detected:.2f} s after the send")
    assert detected <= PING_TIMEOUT + MARGIN
