"""Adaptive heartbeats behind real nginx: the ``short-idle`` proxy gives up on an upstream
silent for 5 s, while this server pings every 20 s (and holds polls 20 s). The Python
client churns on the first cuts, asks for a shorter interval at negotiate, and stops
reconnecting, on every transport.

The three transports' clients run through the same nginx at the same time (nginx times
out each upstream connection on its own; each client has its own user): the runs are
idle waits of ~20 s each, so one window instead of three. Each transport's test awaits
its own run and asserts on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from anywire.clients.python import Client
from tests.e2e.conftest import TRANSPORTS, Server, make_token, start_server
from tests.e2e.test_idle_cut import LONG_HEARTBEAT
from tests.together import Together

from .nginx import Nginx, start_nginx

CUT = 5.0  # seconds: proxy_read_timeout in short-idle.conf
RECORDED = list(range(20))


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


@dataclass
class NginxIdleRun:
    """What one transport's client went through behind the short-idle nginx."""

    transport: str
    churned: int = 0  # reconnects until it asked for a shorter heartbeat
    reconnects: list[float] = field(default_factory=list)  # when (monotonic)
    start: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)  # after the quiet window
    recorded: object = None  # what the server recorded of 20 events sent then


async def _run_behind_nginx(nginx: Nginx, run: NginxIdleRun) -> NginxIdleRun:
    client = Client(
        nginx.url,
        token=lambda: make_token(f"nginx-idle-{run.transport}"),
        transports=(run.transport,),
        backoff_base=0.05,
        backoff_max=0.2,
    )

    @client.on_state
    def _state(state: str) -> None:
        if state == "reconnecting":
            run.reconnects.append(time.monotonic())

    async with client:
        run.start = time.monotonic()
        # Two cuts ~5 s apart that agree make the client ask for a shorter heartbeat
        # (waited for, bounded); then a quiet window of two cut periods.
        async with asyncio.timeout(20.0):
            while client.stats["ping_interval_ms"] >= CUT * 1000:
                await asyncio.sleep(0.05)
        run.churned = len(run.reconnects)
        await asyncio.sleep(2 * CUT)  # the window under test, not a synchronisation
        run.stats = client.stats
        at = [round(t - run.start, 1) for t in run.reconnects]
        print(f"\nnginx short-idle, {run.transport}: {len(at)} reconnects at {at}; {run.stats}")
        for i in RECORDED:
            await client.emit("record", i)
        run.recorded = await client.call("recorded")
    return run


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nginx_runs(nginx: Nginx) -> AsyncIterator[Together[NginxIdleRun]]:
    """Every transport's run, started together on the module's loop."""
    runs = Together(TRANSPORTS, lambda t: _run_behind_nginx(nginx, NginxIdleRun(t)))
    yield runs
    await runs.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_client_adapts_to_nginx_read_timeout(
    nginx_runs: Together[NginxIdleRun], transport: str
) -> None:
    run = await nginx_runs.result(transport, 60)
    at = [round(t - run.start, 1) for t in run.reconnects]
    assert 2 <= run.churned <= 4, at
    assert len(run.reconnects) == run.churned, f"still churning: {at}"
    assert 1000 <= run.stats["ping_interval_ms"] < CUT * 1000
    assert run.recorded == RECORDED
