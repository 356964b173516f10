"""Adaptive heartbeats: behind something that cuts idle connections sooner than the
server's ping interval (and poll window), the client churns on the first cuts, then asks
for a shorter interval at negotiate and stops reconnecting, on every transport.

The client reaches the server through a TCP proxy that closes every connection idle for
3 s; the server pings every 20 s (ping_interval) and grants down to 1 s
(min_ping_interval).

The three transports' clients run at the same time, each through a proxy of its own (the
runs are idle waits of ~15 s each, so one window instead of three); each transport's
test awaits its own run and asserts on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio

from anywire.clients.python import Client
from tests.netfault import FaultProxy
from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token, start_server

IDLE_CUT = 3.0
# A heartbeat far longer than any cut under test, which the client may shorten to 1 s.
LONG_HEARTBEAT = {
    "AW_PING_INTERVAL": "20",
    "AW_PING_TIMEOUT": "5",
    "AW_MIN_PING_INTERVAL": "1",
    "AW_POLL_WINDOW": "20",
    "AW_RESUME_WINDOW": "30",
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server(LONG_HEARTBEAT)
    yield srv
    srv.stop()


@dataclass
class IdleRun:
    """What one transport's client went through behind the idle-cutting proxy."""

    transport: str
    connected: dict[str, int] = field(default_factory=dict)  # stats once connected
    settled: dict[str, int] = field(default_factory=dict)  # once it asked for less
    churned: int = 0  # reconnects until then
    reconnects: list[float] = field(default_factory=list)  # when (monotonic)
    reported: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    last_reported: tuple[str, dict[str, int]] = ("", {})  # after the quiet window
    echo: object = None  # a call after the quiet window
    short_ping_sessions: int = 0  # the server's metric, while connected


async def _run_behind_idle_cut(server: Server, run: IdleRun) -> IdleRun:
    proxy = FaultProxy(server.port, idle_cut=IDLE_CUT)
    client = Client(
        proxy.url,
        token=make_token(f"idlecut-{run.transport}"),
        transports=[run.transport],
        backoff_base=0.05,
        backoff_max=0.2,
    )

    @client.on_state
    def _state(state: str, stats: dict[str, int]) -> None:  # two arguments: with stats
        run.reported.append((state, stats))
        if state == "reconnecting":
            run.reconnects.append(time.monotonic())

    try:
        await client.connect()
        start = time.monotonic()
        run.connected = client.stats
        # Idle: the first cuts come every ~3 s until two of them agree; then the client
        # asks for a shorter heartbeat (waited for, bounded).
        async with asyncio.timeout(15.0):
            while client.stats["ping_interval_ms"] >= IDLE_CUT * 1000:
                await asyncio.sleep(0.05)
        run.settled = client.stats
        run.churned = len(run.reconnects)
        # No churn once the shorter heartbeat runs: two and a half cut periods, quiet.
        await asyncio.sleep(2.5 * IDLE_CUT)  # the window under test, not a synchronisation
        print(
            f"\n{run.transport}: {run.churned} reconnects, at "
            f"{[round(t - start, 1) for t in run.reconnects]}; pinged every "
            f"{run.settled['ping_interval_ms']} ms after {run.settled['idle_cuts']} idle cuts"
        )
        run.last_reported = run.reported[-1]
        # The session keeps working (resumed, nothing lost).
        run.echo = await client.call("echo", {"n": 1})
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(server.url + "/anywire/metrics")).json()
        run.short_ping_sessions = metrics["sessions_short_ping"]
        return run
    finally:
        await client.close()
        proxy.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def idle_runs(server: Server) -> AsyncIterator[Together[IdleRun]]:
    """Every transport's run, started together on the module's loop."""
    runs = Together(TRANSPORTS, lambda t: _run_behind_idle_cut(server, IdleRun(t)))
    yield runs
    await runs.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_client_stops_churning_under_a_short_idle_cut(
    idle_runs: Together[IdleRun], transport: str
) -> None:
    run = await idle_runs.result(transport, 40)
    assert run.connected["ping_interval_ms"] == 20_000
    assert 2 <= run.churned <= 4
    assert len(run.reconnects) == run.churned, "still churning under the shorter heartbeat"
    # Shorter than the cut (a third of it), within the server's bounds.
    assert 1000 <= run.settled["ping_interval_ms"] < IDLE_CUT * 1000
    # The state events report it too: the last connect came with the shorter interval.
    state, stats = run.last_reported
    assert state == "connected" and stats["idle_cuts"] >= 2, run.reported
    assert stats["ping_interval_ms"] == run.settled["ping_interval_ms"]
    assert run.echo == {"n": 1}
    assert run.short_ping_sessions >= 1


@pytest.mark.parametrize(
    ("asked", "granted"), [(None, 20_000), (1500, 1500), (100, 1000), (60_000, 20_000)]
)
def test_negotiate_grants_a_bounded_ping_interval(
    server: Server, asked: int | None, granted: int
) -> None:
    body: dict[str, object] = {"v": 1}
    if asked is not None:
        body["ping_interval"] = asked
    auth = {"Authorization": f"Bearer {make_token('ask')}"}
    r = httpx.post(server.url + "/anywire/negotiate", json=body, headers=auth)
    assert r.status_code == 200
    assert r.json()["ping_interval"] == granted
    assert r.json()["poll_window"] == min(granted, 20_000)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1000", True, None])
def test_a_malformed_ping_interval_is_refused(server: Server, bad: object) -> None:
    auth = {"Authorization": f"Bearer {make_token('ask')}"}
    r = httpx.post(
        server.url + "/anywire/negotiate", json={"v": 1, "ping_interval": bad}, headers=auth
    )
    if bad is None:  # null means "not asked", like an absent field
        assert r.status_code == 200
        return
    assert r.status_code == 400
    assert r.json()["code"] == 4502
