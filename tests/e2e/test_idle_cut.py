"""Adaptive heartbeats: behind something that cuts idle connections sooner than the
server's ping interval (and poll window), the client churns on the first cuts, then asks
for a shorter interval at negotiate and stops reconnecting, on every transport.

The client reaches the server through a TCP proxy that closes every connection idle for
3 s; the server pings every 20 s (ping_interval) and grants down to 1 s
(min_ping_interval).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.netfault import FaultProxy

from .conftest import Server, make_token, start_server

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


@pytest.fixture
def proxy(server: Server) -> Iterator[FaultProxy]:
    p = FaultProxy(server.port, idle_cut=IDLE_CUT)
    yield p
    p.close()


async def test_client_stops_churning_under_a_short_idle_cut(
    server: Server, proxy: FaultProxy, transport: str
) -> None:
    reconnects: list[float] = []
    client = Client(
        proxy.url,
        token=make_token(f"idlecut-{transport}"),
        transports=[transport],
        backoff_base=0.05,
        backoff_max=0.2,
    )

    reported: list[tuple[str, dict[str, int]]] = []

    @client.on_state
    def _state(state: str, stats: dict[str, int]) -> None:  # two arguments: with stats
        reported.append((state, stats))
        if state == "reconnecting":
            reconnects.append(time.monotonic())

    await client.connect()
    start = time.monotonic()
    try:
        assert client.stats["ping_interval_ms"] == 20_000
        # Idle: the first cuts come every ~3 s until two of them agree; then the client
        # asks for a shorter heartbeat (waited for, bounded).
        async with asyncio.timeout(15.0):
            while client.stats["ping_interval_ms"] >= IDLE_CUT * 1000:
                await asyncio.sleep(0.05)
        settled = client.stats
        churned = len(reconnects)
        # No churn once the shorter heartbeat runs: two and a half cut periods, quiet.
        await asyncio.sleep(2.5 * IDLE_CUT)  # the window under test, not a synchronisation
        print(
            f"\n{transport}: {churned} reconnects, at "
            f"{[round(t - start, 1) for t in reconnects]}; pinged every "
            f"{settled['ping_interval_ms']} ms after {settled['idle_cuts']} idle cuts"
        )
        assert 2 <= churned <= 4
        assert len(reconnects) == churned, "still churning under the shorter heartbeat"
        # Shorter than the cut (a third of it), within the server's bounds.
        assert 1000 <= settled["ping_interval_ms"] < IDLE_CUT * 1000
        # The state events report it too: the last connect came with the shorter interval.
        state, stats = reported[-1]
        assert state == "connected" and stats["idle_cuts"] >= 2, reported[-1]
        assert stats["ping_interval_ms"] == settled["ping_interval_ms"]
        # The session keeps working (resumed, nothing lost).
        assert await client.call("echo", {"n": 1}) == {"n": 1}
        metrics = httpx.get(server.url + "/anywire/metrics").json()
        assert metrics["sessions_short_ping"] >= 1
    finally:
        await client.close()


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
