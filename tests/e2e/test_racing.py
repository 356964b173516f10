"""Transport racing in the Python client (protocol section 14, item 16): wherever the transport
tried first is black-holed, the next one is started after ``race_after`` and the first
hello wins, so the first message arrives within 1 s instead of after the connect timeout
(anywire/clients/python/racing.py). The losers cost the server nothing once decided.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client

from .conftest import TRANSPORTS, Server, make_token, start_server

FIRST_MESSAGE = 1.0  # the target, seconds
CONNECT_TIMEOUT = 5.0  # the default: racing must not wait it out

# The transport the client lands on: (server environment, transports black-holed).
BROKEN: dict[str, dict[str, str]] = {
    "websocket": {"AW_TRANSPORTS": "sse,websocket,longpoll", "AW_BREAK": "sse-silent"},
    "sse": {"AW_BREAK": "websocket-silent"},
    "longpoll": {"AW_BREAK": "websocket-silent,sse-silent"},
}
# Healthy servers offering the given transport first.
FIRST: dict[str, dict[str, str]] = {
    "websocket": {"AW_TRANSPORTS": "websocket,sse,longpoll"},
    "sse": {"AW_TRANSPORTS": "sse,longpoll,websocket"},
    "longpoll": {"AW_TRANSPORTS": "longpoll,websocket,sse"},
}


@pytest.fixture(scope="module")
def broken() -> Iterator[dict[str, Server]]:
    started = {name: start_server(env) for name, env in BROKEN.items()}
    yield started
    for srv in started.values():
        srv.stop()


@pytest.fixture(scope="module")
def healthy() -> Iterator[dict[str, Server]]:
    started = {name: start_server(env) for name, env in FIRST.items()}
    yield started
    for srv in started.values():
        srv.stop()


async def _metrics(url: str) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        return dict((await http.get(url + "/anywire/metrics")).json())


async def _sessions(url: str) -> int:
    return (await _metrics(url))["sessions"]


async def _sessions_become(url: str, n: int, within: float) -> float:
    """Seconds until the server holds ``n`` sessions (bounded by ``within``)."""
    start = time.monotonic()
    async with asyncio.timeout(within):
        while await _sessions(url) != n:
            await asyncio.sleep(0.02)
    return time.monotonic() - start


async def _first_message(client: Client) -> tuple[float, float]:
    """Seconds to the hello and to the first event an ``echo`` brings back."""
    start = time.monotonic()
    await client.connect()
    hello = time.monotonic() - start
    assert await client.call("echo", "first") == "first"
    return hello, time.monotonic() - start


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_black_holed_transports_are_raced_past(
    broken: dict[str, Server], transport: str
) -> None:
    srv = broken[transport]
    client = Client(
        srv.url,
        token=make_token(f"race-{transport}"),
        connect_timeout=CONNECT_TIMEOUT,
        backoff_base=0.05,  # reconnects below are timed: keep the backoff out of them
        backoff_max=0.2,
    )
    try:
        hello, first = await _first_message(client)
        assert client.transport == transport
        print(f"\n{transport} ({BROKEN[transport]['AW_BREAK']}): hello {hello:.3f} s, "
              f"first message {first:.3f} s")  # fmt: skip
        assert first < FIRST_MESSAGE, first
        # A contender stopped before its hello did not fail: nothing is remembered.
        assert client.fallback.failed == []
        await _sessions_become(srv.url, 1, 2.0)  # only the winner's session
        assert client.stats["duplicates"] == 0
        # Resumes are not raced (two resumes of one session would fight over it): the
        # losers are tried last, so a reconnect does not wait out the black hole either.
        silent = BROKEN[transport]["AW_BREAK"].replace("-silent", "").split(",")
        assert sorted(client.fallback.lost) == sorted(silent)
        took: list[float] = []
        connected = asyncio.Event()
        client.on_connect(connected.set)
        for _ in range(3):
            connected.clear()
            start = time.monotonic()
            await client.drop_connection()
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await connected.wait()
            took.append(time.monotonic() - start)
            assert client.transport == transport and client.recovered
        print("  reconnects took " + ", ".join(f"{t:.3f}" for t in took) + " s")
        assert max(took) < FIRST_MESSAGE, took
        assert await client.call("echo", "after") == "after"
        assert client.stats["duplicates"] == 0
    finally:
        await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_happy_path_keeps_the_first_offer(healthy: dict[str, Server], transport: str) -> None:
    srv = healthy[transport]
    client = Client(srv.url, token=make_token(f"happy-{transport}"))
    try:
        hello, first = await _first_message(client)
        print(f"\n{transport} first, healthy: hello {hello:.3f} s, first message {first:.3f} s")
        assert client.transport == transport
        assert first < FIRST_MESSAGE, first
        await _sessions_become(srv.url, 1, 2.0)
    finally:
        await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_losers_that_said_hello_are_released_at_once(
    healthy: dict[str, Server], transport: str
) -> None:
    # race_after=0 starts the offers one negotiate apart: they reach their hellos, one wins, the
    # others must end their sessions with a goodbye rather than linger for the resume
    # window (which is far longer than the bound below).
    srv = healthy[transport]
    client = Client(srv.url, token=make_token(f"tie-{transport}"), race_after=0)
    before = await _metrics(srv.url)
    try:
        hello, first = await _first_message(client)
        start = time.monotonic()
        async with asyncio.timeout(1.5):  # far below the resume window and ticket_ttl
            while True:
                after = await _metrics(srv.url)
                opened = after["connections"] - before["connections"]
                # Every contender redeemed its ticket, and only the winner's session is left.
                if opened >= 2 and after["sessions"] == 1 and after["pending_tickets"] == 0:
                    break
                await asyncio.sleep(0.02)
        released = time.monotonic() - start
        print(f"\n{transport} first, all raced at once: won by {client.transport} of {opened}, "
              f"hello {hello:.3f} s, losers released {released:.3f} s later")  # fmt: skip
        assert first < FIRST_MESSAGE, first
        assert client.fallback.failed == []
        for i in range(5):
            assert await client.call("echo", i) == i
        assert client.stats["duplicates"] == 0
    finally:
        await client.close()
