"""Fallback memory across reconnects (protocol section 14.2): a transport that failed by
timing out (a black hole after the WebSocket 101, an SSE stream that never delivers) is
reported in every later negotiate, so the server offers it last and the Python client
does not pay its connect timeout again at each reconnect (anywire/clients/python/rounds.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from anywire.clients.python import Client

from .conftest import TRANSPORTS, Server, make_token, start_server

CONNECT_TIMEOUT = 1.5
RECONNECTS = 4

# The transport the client lands on: (server environment, transports black-holed).
SETUPS: dict[str, dict[str, str]] = {
    "websocket": {"AW_TRANSPORTS": "sse,websocket", "AW_BREAK": "sse-silent"},
    "sse": {"AW_BREAK": "websocket-silent"},
    "longpoll": {"AW_BREAK": "websocket-silent,sse-silent"},
}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    started = {name: start_server(env) for name, env in SETUPS.items()}
    yield started
    for srv in started.values():
        srv.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_failed_transport_is_not_retried_at_each_reconnect(
    servers: dict[str, Server], transport: str
) -> None:
    client = Client(
        servers[transport].url,
        token=lambda: make_token(f"memory-{transport}"),
        connect_timeout=CONNECT_TIMEOUT,
        race_after=None,  # sequential: racing stops losers before they fail (test_racing)
        backoff_base=0.05,
        backoff_max=0.2,
    )
    connected = asyncio.Event()
    client.on_connect(connected.set)
    async with client:
        assert client.transport == transport
        failed = list(client.fallback.failed)
        assert failed and transport not in failed, failed
        took: list[float] = []
        for _ in range(RECONNECTS):
            connected.clear()
            start = time.monotonic()
            await client.drop_connection()
            async with asyncio.timeout(10):
                await connected.wait()
            took.append(time.monotonic() - start)
            assert client.transport == transport
            assert client.fallback.failed == failed  # still reported, still skipped
        print(f"\n{transport}: first connect fell back past {failed}; reconnects took "
              + ", ".join(f"{t:.2f}" for t in took) + " s")  # fmt: skip
        # Each reconnect is a backoff (<= 0.2 s) and one attempt, never a timed-out one.
        assert max(took) < CONNECT_TIMEOUT, took
        assert await client.call("echo", "after") == "after"
        assert client.stats["duplicates"] == 0
