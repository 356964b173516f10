"""Transport racing through real nginx that buffers responses (``buffering``): the
event stream's hello is held back although the server has the session. The Python client
races long-poll past it within 1 s, and the stream it stops says goodbye, so the server
ends that session at once instead of keeping it for the resume window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token

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


async def test_held_back_stream_is_raced_past_and_released(
    proxies: dict[str, Nginx], server: Server
) -> None:
    client = Client(
        proxies["buffering"].url,
        token=lambda: make_token("py-race-buffered"),
        transports=("sse", "longpoll"),
    )
    start = time.monotonic()
    await client.connect()
    try:
        assert await client.call("echo", "first") == "first"
        first = time.monotonic() - start
        assert client.transport == "longpoll"
        # The server holds the SSE contender's session too, until its goodbye arrives;
        # the resume window (3 s) is far longer than the bound.
        async with httpx.AsyncClient() as http, asyncio.timeout(1.5):
            while (await http.get(server.url + "/anywire/metrics")).json()["sessions"] != 1:
                await asyncio.sleep(0.02)
        released = time.monotonic() - start
        print(f"\nbuffering nginx: long-poll first message {first:.3f} s, held-back SSE "
              f"session ended {released:.3f} s after connect()")  # fmt: skip
        assert first < 1.0, first
        assert client.fallback.lost == ["sse"]
    finally:
        await client.close()
