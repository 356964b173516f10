"""Battery profile: a client asks for a longer heartbeat at negotiate, the server grants
it within its ``max_ping_interval``, pings (or holds polls) at that slower pace, does not
expire the session at it, and notices a dead peer after granted interval + ping_timeout.

The server pings every 1 s (poll window 1 s, ping_timeout 1 s: silent for 2 s is dead
by default) and allows up to 3 s; the clients ask for 2.5 s. The three transports run
at the same time (each run is mostly an idle window), each with its own users.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio

from anywire.clients.python import Client
from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token, start_server
from .raw import RawConn

ASK = 2.5  # seconds
PING_TIMEOUT = 1.0
BATTERY = {
    "AW_PING_INTERVAL": "1",
    "AW_PING_TIMEOUT": str(PING_TIMEOUT),
    "AW_MIN_PING_INTERVAL": "0.5",
    "AW_MAX_PING_INTERVAL": "3",
    "AW_POLL_WINDOW": "1",
    "AW_RESUME_WINDOW": "5",
}
IDLE = 6.0  # three times the default silence limit (1 + 1 s)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server(BATTERY)
    yield srv
    srv.stop()


@dataclass
class BatteryRun:
    """What one transport's clients saw."""

    transport: str
    negotiated: dict[str, object] = field(default_factory=dict)
    client_interval_ms: int = 0  # the Python client's stats once connected
    reconnects: int = 0  # during the idle window
    echo: object = None  # a call after it
    gaps: list[float] = field(default_factory=list)  # between pings, or poll holds
    detected: float = 0.0  # silence until the server declared the peer dead
    dead_code: int = 0


async def _idle_client(server: Server, run: BatteryRun) -> None:
    """The Python client with ``heartbeat=2.5``: stays connected through the idle window."""
    client = Client(
        server.url, token=make_token(f"battery-{run.transport}"), transports=[run.transport],
        heartbeat=ASK,
    )  # fmt: skip

    @client.on_state
    def _state(state: str) -> None:
        if state == "reconnecting":
            run.reconnects += 1

    try:
        await client.connect()
        run.client_interval_ms = client.stats["ping_interval_ms"]
        await asyncio.sleep(IDLE)  # the window under test, not a synchronisation
        run.echo = await client.call("echo", {"n": 1})
    finally:
        await client.close()


async def _pace(server: Server, run: BatteryRun) -> None:
    """A raw connection asking for 2.5 s: the gaps between the server's pings (answered)
    or the holds of its polls."""
    conn = RawConn(server.url, run.transport, make_token(f"pace-{run.transport}"))
    try:
        await conn.open(ping_interval=int(ASK * 1000))
        run.negotiated = conn.neg
        if run.transport == "longpoll":
            assert conn._reader is not None
            conn._reader.cancel()  # poll by hand, timing each hold
            for _ in range(2):
                start = time.monotonic()
                r = await conn.http.get(
                    "/anywire/poll", headers={"X-Anywire-Token": conn.neg["token"]}
                )
                run.gaps.append(time.monotonic() - start)
                assert r.status_code == 204, r.text  # held, then "nothing yet": alive
            return
        last = time.monotonic()
        async with asyncio.timeout(IDLE + 2):
            while len(run.gaps) < 2:
                frame = await conn.recv(timeout=IDLE, skip_control=False)
                assert frame["t"] in ("ping", "rx"), frame
                if frame["t"] == "ping":
                    now = time.monotonic()
                    run.gaps.append(now - last)
                    last = now
                    await conn.send({"t": "pong"})
    finally:
        await conn.close()


async def _detect(server: Server, run: BatteryRun) -> None:
    """A raw connection asking for 2.5 s that goes silent: how long until it is dead."""
    conn = RawConn(server.url, run.transport, make_token(f"dead-{run.transport}"))
    try:
        await conn.open(ping_interval=int(ASK * 1000))
        start = time.monotonic()
        if run.transport == "longpoll":
            assert conn._reader is not None
            conn._reader.cancel()  # stop polling: each poll is the heartbeat
            await asyncio.sleep(ASK + PING_TIMEOUT + 0.5)  # the silence under test
            r = await conn.http.get("/anywire/poll", headers={"X-Anywire-Token": conn.neg["token"]})
            assert r.status_code == 410, r.text
            run.dead_code = r.json()[0]["c"]
            run.detected = ASK + PING_TIMEOUT + 0.5  # an upper bound only
            return
        frame = await conn.recv(timeout=10, skip_control=False)
        while frame["t"] != "close":  # pings are not answered
            frame = await conn.recv(timeout=10, skip_control=False)
        run.detected = time.monotonic() - start
        run.dead_code = frame["c"]
    finally:
        await conn.close()


async def _run(server: Server, transport: str) -> BatteryRun:
    run = BatteryRun(transport)
    await asyncio.gather(_idle_client(server, run), _pace(server, run), _detect(server, run))
    print(f"\n{transport}: gaps {[round(g, 2) for g in run.gaps]}, dead after "
          f"{run.detected:.2f} s (code {run.dead_code})")  # fmt: skip
    return run


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runs(server: Server) -> AsyncIterator[Together[BatteryRun]]:
    together = Together(TRANSPORTS, lambda t: _run(server, t))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_longer_heartbeat_is_granted_and_kept(
    runs: Together[BatteryRun], transport: str
) -> None:
    run = await runs.result(transport, 30)
    assert run.negotiated["ping_interval"] == 2500
    assert run.negotiated["poll_window"] == 2500  # polls are held that long too
    assert run.client_interval_ms == 2500
    # Idle for three default silence limits: not expired, not reconnected, still working.
    assert run.reconnects == 0
    assert run.echo == {"n": 1}
    # The slower pace: pings (or poll holds) every ~2.5 s, not every 1 s.
    assert len(run.gaps) == 2
    for gap in run.gaps:
        assert 2.2 <= gap <= 3.2, run.gaps


@pytest.mark.asyncio(loop_scope="module")
async def test_a_dead_peer_is_noticed_after_granted_plus_timeout(
    runs: Together[BatteryRun], transport: str
) -> None:
    run = await runs.result(transport, 30)
    if transport == "longpoll":
        assert run.dead_code == 4006
        return
    assert run.dead_code == 4001
    # granted interval + ping_timeout (3.5 s), not the server's default 2 s.
    assert ASK + PING_TIMEOUT - 0.3 <= run.detected <= ASK + PING_TIMEOUT + 1.0


@pytest.mark.parametrize(("asked", "granted"), [(2500, 2500), (10_000, 3000), (100, 500)])
def test_negotiate_grants_within_the_server_bounds(
    server: Server, asked: int, granted: int
) -> None:
    auth = {"Authorization": f"Bearer {make_token('ask')}"}
    r = httpx.post(
        server.url + "/anywire/negotiate", json={"v": 1, "ping_interval": asked}, headers=auth
    )
    assert r.status_code == 200
    assert r.json()["ping_interval"] == granted
    assert r.json()["poll_window"] == (granted if granted > 1000 else 500)


async def _comment_gaps(server: Server, ask: int | None, count: int) -> list[float]:
    """An SSE stream (asking ``ask`` ms, or nothing): the gaps between its comment
    keepalives, from the hello on, while its pings are answered."""
    conn = RawConn(server.url, "sse", make_token(f"comments-{ask}"))
    try:
        body = {} if ask is None else {"ping_interval": ask}
        await conn.open(**body)
        opened = time.monotonic()
        async with asyncio.timeout(count * 4 + 2):
            while len(conn.comments) < count:
                try:
                    frame = await conn.recv(timeout=0.2, skip_control=False)
                except TimeoutError:
                    continue
                if frame["t"] == "ping":
                    await conn.send({"t": "pong"})
        marks = [opened, *conn.comments[:count]]
        return [b - a for a, b in itertools.pairwise(marks)]
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_sse_keepalives_follow_a_longer_grant(server: Server) -> None:
    """A battery SSE stream gets its comment keepalives at the granted 2.5 s, not at the
    server's usual period (min(15 s, ping_interval) = 1 s here), which a stream that
    asked for nothing still gets."""
    battery, usual = await asyncio.gather(
        _comment_gaps(server, int(ASK * 1000), 2), _comment_gaps(server, None, 2)
    )
    print(f"\nsse comment gaps: battery {[round(g, 2) for g in battery]}, "
          f"default {[round(g, 2) for g in usual]}")  # fmt: skip
    for gap in battery:
        assert 2.2 <= gap <= 3.0, battery
    for gap in usual:
        assert 0.7 <= gap <= 1.4, usual


@pytest.fixture(scope="module")
def prometheus_server() -> Iterator[Server]:
    srv = start_server(BATTERY, args=("--metrics", "prometheus"))
    yield srv
    srv.stop()


@pytest.mark.asyncio
async def test_sessions_on_a_longer_interval_are_counted(prometheus_server: Server) -> None:
    """``sessions_long_ping`` (JSON and Prometheus) counts a battery session on each
    transport, not one on the server's own interval nor one on a shorter grant."""
    srv = prometheus_server
    conns = [RawConn(srv.url, t, make_token(f"long-{t}")) for t in TRANSPORTS]
    others = [RawConn(srv.url, "websocket", make_token(f"not-long-{n}")) for n in range(2)]
    try:
        for conn in conns:
            await conn.open(ping_interval=int(ASK * 1000))
        await others[0].open()
        await others[1].open(ping_interval=500)  # shorter: sessions_short_ping
        async with httpx.AsyncClient(base_url=srv.url) as http:
            stats = (await http.get("/anywire/metrics?format=json")).json()
            text = (await http.get("/anywire/metrics")).text
    finally:
        for conn in [*conns, *others]:
            await conn.close()
    assert stats["sessions_long_ping"] == len(TRANSPORTS), stats
    assert stats["sessions_short_ping"] == 1, stats
    assert f"anywire_sessions_long_ping {float(len(TRANSPORTS))}" in text, text
