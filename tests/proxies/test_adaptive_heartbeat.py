"""Adaptive heartbeats behind real nginx: the ``short-idle`` proxy gives up on an upstream
silent for 5 s, while this server pings every 20 s (and holds polls 20 s). The Python
client churns on the first cuts, asks for a shorter interval at negotiate, and stops
reconnecting, on every transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import TRANSPORTS, Server, make_token, start_server
from tests.e2e.test_idle_cut import LONG_HEARTBEAT

from .nginx import Nginx, start_nginx

CUT = 5.0  # seconds: proxy_read_timeout in short-idle.conf


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server(LONG_HEARTBEAT)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def nginx(server: Server) -> Iterator[Nginx]:
    proxy = start_nginx("short-idle", server.port)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_adapts_to_nginx_read_timeout(
    nginx: Nginx, server: Server, transport: str
) -> None:
    reconnects: list[float] = []
    client = Client(
        nginx.url,
        token=lambda: make_token(f"nginx-idle-{transport}"),
        transports=(transport,),
        backoff_base=0.05,
        backoff_max=0.2,
    )

    @client.on_state
    def _state(state: str) -> None:
        if state == "reconnecting":
            reconnects.append(time.monotonic())

    async with client:
        start = time.monotonic()
        # Two cuts ~5 s apart that agree make the client ask for a shorter heartbeat
        # (waited for, bounded); then a quiet window of two cut periods.
        async with asyncio.timeout(20.0):
            while client.stats["ping_interval_ms"] >= CUT * 1000:
                await asyncio.sleep(0.05)
        churned = len(reconnects)
        await asyncio.sleep(2 * CUT)  # the window under test, not a synchronisation
        at = [round(t - start, 1) for t in reconnects]
        stats = client.stats
        print(f"\nnginx short-idle, {transport}: {len(reconnects)} reconnects at {at}; {stats}")
        assert 2 <= churned <= 4, at
        assert len(reconnects) == churned, f"still churning: {at}"
        assert 1000 <= stats["ping_interval_ms"] < CUT * 1000
        for i in range(20):
            await client.emit("record", i)
        assert await client.call("recorded") == list(range(20))
