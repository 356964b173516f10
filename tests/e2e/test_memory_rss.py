"""What hostile connections cost the server process, in RSS (issue #13, point 1).

A hostile connection joins a busy room (150 members, each with ~1 KB of presence meta)
with the largest meta allowed, then re-joins it again and again, at ~100 per second,
over a WebSocket it never reads: it never acknowledges anything. Before the byte budget
each answer (every member's presence) stayed in its outbox, up to 1,000 of them. The
targets: one such connection grows the server's RSS (``VmRSS`` of /proc/<pid>/status)
by at most 10 MB, a hundred of them by at most 200 MB.

The figures are printed (``pytest -s``) for docs/security.md; a WebSocket is the worst
case (the socket buffers what the client does not read, and a stalled close is cut
only after ``ping_timeout``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from .conftest import Server, make_token, start_server
from .raw import RawConn

CROWD = 150
META = {"pad": "m" * 950}  # under max_meta_size (1024 bytes encoded)
RATE = 100  # re-joins per second per hostile connection (below the flood limit)
MB = 1024 * 1024

ENV = {
    "AW_OUTBOX_BYTES": str(1 * MB),  # the defaults of Settings
    "AW_OUTBOX": "1000",
    "AW_MAX_META": "1024",
    "AW_PRESENCE_LIMIT": "100",
    "AW_MAX_FRAME": "65536",
    "AW_FLOOD_RATE": "200",
    "AW_FLOOD_BURST": "1000",
    "AW_PING_INTERVAL": "5",
    "AW_PING_TIMEOUT": "2",  # a stalled close is cut after this
    "AW_RESUME_WINDOW": "30",  # the cut sessions (1 MiB each at most) stay meanwhile
}


def rss(pid: int) -> int:
    """The resident set size of process ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Peak:
    """Samples a process's RSS every 20 ms while running; ``peak`` is the largest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss(pid)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss(self.pid))
            await asyncio.sleep(0.02)

    def __enter__(self) -> Peak:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss(self.pid))


class Hostile:
    """One WebSocket that joins, then re-joins at RATE per second and never reads."""

    def __init__(self, url: str, user: str) -> None:
        self.url = url
        self.user = user
        self.sid = ""
        self.ws: ClientConnection | None = None
        self.sent = 0

    async def open(self, http: httpx.AsyncClient) -> None:
        r = await http.post(
            "/anywire/negotiate",
            json={"codecs": ["json"], "transports": ["websocket"]},
            headers={"Authorization": f"Bearer {make_token(self.user)}"},
        )
        neg = r.json()
        self.sid = neg["sid"]
        # max_queue=1: the client library stops reading its socket at once.
        self.ws = await connect(self.url.replace("http", "ws") + "/anywire/ws", max_queue=1)
        await self.ws.send(json.dumps({"t": "connect", "ticket": neg["ticket"]}))

    async def attack(self, joins: int) -> None:
        """Send ``joins`` join requests at RATE per second (stops early if the server no
        longer takes them: it closed the connection)."""
        assert self.ws is not None
        start = time.monotonic()
        for s in range(1, joins + 1):
            frame = {"t": "join", "s": s, "id": s, "r": "busy", "meta": META}
            try:
                async with asyncio.timeout(1):
                    await self.ws.send(json.dumps(frame))
            except Exception:
                return  # closed or stalled by the server
            self.sent = s
            delay = start + s / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def close(self) -> None:
        if self.ws is not None:
            self.ws.transport.abort()


@pytest.fixture(scope="module")
def rss_server() -> Iterator[Server]:
    srv = start_server(ENV)
    yield srv
    srv.stop()


async def _crowd(url: str) -> list[RawConn]:
    conns = [RawConn(url, "websocket", make_token(f"crowd-{i}")) for i in range(CROWD)]
    for chunk in range(0, CROWD, 25):
        await asyncio.gather(*(c.open() for c in conns[chunk : chunk + 25]))
    for c in conns:
        await c.send({"t": "join", "s": 1, "id": 1, "r": "busy", "meta": META})
    for c in conns:
        while (await c.recv(timeout=10))["t"] != "ack":
            pass
    return conns


async def _monitor(url: str) -> tuple[RawConn, Any]:
    """A well-behaved connection asking the server how a session was last closed."""
    mon = RawConn(url, "websocket", make_token("monitor"))
    await mon.open()
    seq = 0

    async def last_close(sid: str) -> Any:
        nonlocal seq
        seq += 1
        await mon.send({"t": "event", "s": seq, "id": seq, "e": "last_close", "d": sid})
        while True:
            frame = await mon.recv(timeout=10)
            if frame["t"] == "ack" and frame["id"] == seq:
                return frame["d"]

    return mon, last_close


def _cut_slow(state: Any) -> bool:
    """Closed 4002 and no longer attached (the stalled close was cut)."""
    return bool(state) and bool(state["close"]) and state["close"][0] == 4002 and (
        not state["attached"]
    )


async def _round(srv: Server, n: int, joins: int, last_close: Any) -> tuple[int, int, int]:
    """``n`` hostile connections attack at once; returns (RSS before, peak RSS, how many
    were closed with 4002) once every one was closed and cut, or sent everything."""
    pid = srv.proc.pid
    hostiles = [Hostile(srv.url, f"hostile-{n}-{i}") for i in range(n)]
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        for h in hostiles:
            await h.open(http)
    before = rss(pid)
    try:
        with Peak(pid) as peak:
            await asyncio.gather(*(h.attack(joins) for h in hostiles))
            # Until each was closed 4002 and its stalled close cut (after ping_timeout):
            # the session then holds what it holds for the resume window.
            states: list[Any] = []
            async with asyncio.timeout(20):
                while not all(_cut_slow(s) for s in states) or not states:
                    states = [await last_close(h.sid) for h in hostiles]
                    await asyncio.sleep(0.2)
        slow = sum(1 for s in states if _cut_slow(s))
        return before, peak.peak, slow
    finally:
        for h in hostiles:
            await h.close()


async def test_hostile_connections_grow_the_server_rss_within_the_targets(
    rss_server: Server,
) -> None:
    started = time.monotonic()
    crowd = await _crowd(rss_server.url)
    mon, last_close = await _monitor(rss_server.url)
    try:
        # A warm-up round, so that what one connection costs is not the first-use cost of
        # the code paths (imports, caches, allocator arenas).
        await _round(rss_server, 1, 300, last_close)
        before1, peak1, slow1 = await _round(rss_server, 1, 300, last_close)
        before100, peak100, slow100 = await _round(rss_server, 100, 60, last_close)
    finally:
        for c in [*crowd, mon]:
            await c.close()
    one, hundred = peak1 - before1, peak100 - before100
    print(
        f"\nRSS: 1 hostile connection +{one / MB:.1f} MB (closed 4002: {slow1}); "
        f"100 hostile connections +{hundred / MB:.1f} MB (closed 4002: {slow100}); "
        f"baseline {before1 / MB:.0f} MB; {time.monotonic() - started:.0f} s"
    )
    assert slow1 == 1 and slow100 == 100
    assert one <= 10 * MB
    assert hundred <= 200 * MB

