"""The Python client through real nginx configured as a restrictive intermediary.

1. ``ws-blocked``: a proxy that drops ``Upgrade``/``Connection`` (WebSocket impossible);
2. ``buffering``: a proxy that buffers responses and ignores ``X-Accel-Buffering`` (SSE
   events held back, even the headers): the hello timeout moves the client to long-poll;
3. ``short-idle``: a 5 s read timeout on every request: heartbeats and the poll window
   keep each transport alive with nothing lost and no reconnection (the three
   transports' clients are silent at the same time).

The browser runs through the same proxies in ``tests/browser/test_proxies.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from anywire.clients.python import Client
from tests.e2e.conftest import TRANSPORTS, Server, make_token
from tests.e2e.test_behaviour import Inbox
from tests.together import Together

from .nginx import Nginx, proxy_test_server, restrictive_proxies


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = proxy_test_server()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxies(server: Server) -> Iterator[dict[str, Nginx]]:
    with restrictive_proxies(server.port) as started:
        yield started


async def _flow(client: Client, server: Server, room: str) -> None:
    """Acks both ways and a room broadcast from a direct client arrive through the proxy."""
    inbox = Inbox()
    client.on("news")(inbox)
    await client.join(room)
    assert await client.call("echo", {"through": "proxy"}) == {"through": "proxy"}
    async with Client(server.url, token=lambda: make_token("direct")) as other:
        for i in range(20):
            await other.call("to_room", {"room": room, "event": "news", "data": i})
    assert await inbox.wait_for(20) == list(range(20))


async def test_stripped_upgrade_lands_on_sse(proxies: dict[str, Nginx], server: Server) -> None:
    client = Client(proxies["ws-blocked"].url, token=lambda: make_token("py-ws-blocked"))
    async with client:
        assert client.transport == "sse"
        await _flow(client, server, "ws-blocked")


async def test_buffered_stream_falls_back_to_longpoll(
    proxies: dict[str, Nginx], server: Server
) -> None:
    client = Client(
        proxies["buffering"].url,
        token=lambda: make_token("py-buffering"),
        transports=("sse", "longpoll"),
        connect_timeout=2,
    )
    async with client:
        assert client.transport == "longpoll"
        await _flow(client, server, "buffering")


async def test_buffered_stream_with_short_pings_falls_back_to_longpoll(
    proxies: dict[str, Nginx], server: Server
) -> None:
    """The server's silence window (1 + 1.5 s) is shorter than the connect timeout (5 s):
    the proxy releases hello and the server's 4001 together, at once after the hello
    arrived. The client must take that as a held-back stream and fall back, rather than
    resume on SSE forever (issue #16: 0 of 13 calls in 15 s)."""
    states: list[str] = []
    client = Client(
        proxies["buffering"].url,
        token=lambda: make_token("py-buffering-short"),
        transports=("sse", "longpoll"),
    )
    client.on_state(states.append)
    on_longpoll = asyncio.Event()
    client.on_connect(lambda: client.transport == "longpoll" and on_longpoll.set())
    start = time.monotonic()
    await client.connect()
    try:
        async with asyncio.timeout(15):
            await on_longpoll.wait()
        took = time.monotonic() - start
        print(f"\nbuffered SSE, short pings: on long-poll after {took:.2f} s, states {states}")
        # Raced past (the stream lost to long-poll) rather than timed out: tried last.
        assert client.fallback.lost == ["sse"] and client.fallback.failed == []
        await _flow(client, server, "buffering-short")
        for i in range(13):
            assert await client.call("echo", i) == i
        assert client.transport == "longpoll"
    finally:
        await client.close()


async def test_buffering_proxy_still_passes_websocket(
    proxies: dict[str, Nginx], server: Server
) -> None:
    async with Client(proxies["buffering"].url, token=lambda: make_token("py-buf-ws")) as client:
        assert client.transport == "websocket"
        await _flow(client, server, "buffering-ws")


@dataclass
class SilentRun:
    """What one transport's client saw through the short-idle proxy."""

    transport: str
    chosen: str | None = None
    states_after_silence: list[str] = field(default_factory=list)
    got: list[Any] = field(default_factory=list)
    recorded: object = None
    states_at_end: list[str] = field(default_factory=list)


async def _silent_run(proxy: Nginx, run: SilentRun) -> SilentRun:
    states: list[str] = []
    client = Client(
        proxy.url,
        token=lambda: make_token(f"py-idle-{run.transport}"),
        transports=(run.transport,),
    )
    client.on_state(states.append)
    inbox = Inbox()
    client.on("n")(inbox)
    async with client:
        run.chosen = client.transport
        # The stimulus is silence itself: 8 s with no application traffic, longer than the
        # proxy's 5 s read timeout. Only heartbeats and the poll window can keep it open.
        await asyncio.sleep(8)  # the condition under test, not a synchronisation
        run.states_after_silence = list(states)
        await client.call("burst", {"n": 200})
        run.got = await inbox.wait_for(200)
        for i in range(50):
            await client.emit("record", i)
        run.recorded = await client.call("recorded")
        run.states_at_end = list(states)
    return run


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def silent_runs(
    proxies: dict[str, Nginx],
) -> AsyncIterator[Together[SilentRun]]:
    """The three transports' clients stay silent through the short-idle nginx at the
    same time (nginx times out each connection on its own; one user each): one silent
    window instead of three. Each transport's test awaits its own run."""
    proxy = proxies["short-idle"]
    runs = Together(TRANSPORTS, lambda t: _silent_run(proxy, SilentRun(t)))
    yield runs
    await runs.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_short_idle_timeout_is_outlived(
    proxies: dict[str, Nginx], silent_runs: Together[SilentRun], transport: str
) -> None:
    run = await silent_runs.result(transport, 40)
    assert run.chosen == transport
    assert run.states_after_silence == ["connecting", "connected"], run.states_after_silence
    assert run.got == list(range(200))
    assert run.recorded == list(range(50))
    assert run.states_at_end == ["connecting", "connected"], run.states_at_end
    assert proxies["short-idle"].proc.poll() is None
