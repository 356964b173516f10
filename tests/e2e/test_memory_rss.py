"""What hostile connections cost the server process, in RSS (issue #13, point 1).

A hostile connection joins a busy room (150 members, each with ~1 KB of presence meta)
with the largest meta allowed, then re-joins it again and again, at ~100 per second,
over a WebSocket, and never acknowledges anything: a *deaf* one reads every answer, a
*stalled* one reads nothing. Before the byte budget each answer (every member's
presence, encoded once written) stayed in its outbox, up to 1,000 of them. The targets:
one such connection grows the server's RSS (``VmRSS`` of /proc/<pid>/status) by at most
10 MB, a hundred of them by at most 200 MB.

The figures are printed (``pytest -s``) for docs/security.md. A WebSocket is the worst
case: the socket buffers what a client does not read, and a stalled close is cut only
after ``ping_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from .conftest import Server, make_token, start_server
from .raw import RawConn

# Run alone (scripts/test's second phase): RSS bounds on a server that must keep up with
# ~100 hostile joins a second; a loaded machine lets its queues, and so its RSS, grow.
pytestmark = pytest.mark.alone

CROWD = 150
META = {"pad": "m" * 950}  # under max_meta_size (1024 bytes encoded)
RATE = 100  # re-joins per second of one hostile connection (below the flood limit)
RATE_100 = 20  # ... of each of a hundred (2,000 answers of ~110 KB a second in all)
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
    """One WebSocket that joins, then re-joins at RATE per second and never acknowledges
    anything; ``deaf``: it reads (and drops) every answer, else it reads nothing."""

    def __init__(self, url: str, user: str, deaf: bool) -> None:
        self.url = url
        self.user = user
        self.deaf = deaf
        self.sid = ""
        self.ws: ClientConnection | None = None
        self.sent = 0
        self.answered = 0  # (deaf) the highest ack id read
        self._reader: asyncio.Task[None] | None = None

    async def open(self, http: httpx.AsyncClient) -> None:
        r = await http.post(
            "/anywire/negotiate",
            json={"codecs": ["json"], "transports": ["websocket"]},
            headers={"Authorization": f"Bearer {make_token(self.user)}"},
        )
        neg = r.json()
        self.sid = neg["sid"]
        # max_queue=1: unless read, the client library stops reading its socket at once;
        # a small receive buffer: what a stalled client's kernel takes in is small too
        # (the server's socket buffers then fill, as they would behind a slow link).
        sock = socket.socket()
        if not self.deaf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.setblocking(False)
        port = int(self.url.rsplit(":", 1)[1])
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        self.ws = await connect(
            self.url.replace("http", "ws") + "/anywire/ws", sock=sock, max_queue=1, max_size=None
        )
        await self.ws.send(json.dumps({"t": "connect", "ticket": neg["ticket"]}))
        if self.deaf:
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            text = message if isinstance(message, str) else message.decode()
            # (No full decode: the last ack's id is all it wants to know.)
            at = text.rfind('"t":"ack","s":')
            if at >= 0:
                tail = text[at:]
                self.answered = max(self.answered, int(tail.split('"id":', 1)[1].split(",", 1)[0]))

    def done(self, state: Any) -> bool:
        """Whether the server is through with this connection: a deaf one has every
        answer; a stalled one was closed and its stalled close cut (it is no longer
        attached; the session keeps what it holds for the resume window). Closed 4002
        as a rule; 4001 if the server stopped reading it first (it stops reading a
        WebSocket whose answers it cannot write, so its heartbeat goes silent). A deaf
        one that reads slower than it asks may be closed 4002 as well."""
        closed = bool(state) and bool(state["close"]) and not state["attached"]
        return closed or (self.deaf and self.answered >= self.sent)

    async def attack(self, joins: int, rate: float) -> None:
        """Send ``joins`` join requests at ``rate`` per second (stops early if the server
        no longer takes them: it closed the connection)."""
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
            delay = start + s / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
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
            frame = await mon.recv(timeout=30)
            if frame["t"] == "ack" and frame["id"] == seq:
                return frame["d"]

    return mon, last_close


def _code(h: Hostile, state: Any) -> int | None:
    """The code a stalled connection was closed with (None for a deaf one)."""
    return None if h.deaf else int(state["close"][0])


async def _round(
    srv: Server, stalled: int, deaf: int, joins: int, rate: float = RATE
) -> tuple[int, int, int]:
    """``stalled`` + ``deaf`` hostile connections attack at once, ``joins`` re-joins each
    (a stalled one goes on until the server stops reading it, up to 4 x ``joins``);
    returns (RSS before, peak RSS, how many stalled ones were closed 4002) once the
    server is through with every one."""
    pid = srv.proc.pid
    kinds = [False] * stalled + [True] * deaf
    hostiles = [Hostile(srv.url, f"hostile-{i}-{d}", d) for i, d in enumerate(kinds)]
    mon: RawConn | None = None
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        for h in hostiles:
            await h.open(http)
    before = rss(pid)
    try:
        with Peak(pid) as peak:
            await asyncio.gather(
                *(h.attack(joins if h.deaf else 4 * joins, rate) for h in hostiles)
            )
            mon, last_close = await _monitor(srv.url)
            deadline = time.monotonic() + 30
            while True:
                states = [await last_close(h.sid) for h in hostiles]
                pending = [
                    (h.deaf, h.sent, h.answered, s)
                    for h, s in zip(hostiles, states, strict=True)
                    if not h.done(s)
                ]
                if not pending:
                    break
                assert time.monotonic() < deadline, f"server not through with {pending[:5]}"
                await asyncio.sleep(0.2)
        slow = sum(1 for h, s in zip(hostiles, states, strict=True) if _code(h, s) == 4002)
        return before, peak.peak, slow
    finally:
        for h in hostiles:
            await h.close()
        if mon is not None:
            await mon.close()


async def test_hostile_connections_grow_the_server_rss_within_the_targets(
    rss_server: Server,
) -> None:
    started = time.monotonic()
    crowd = await _crowd(rss_server.url)
    try:
        # (No warm-up: the first hostile connection also pays for first use of the code
        # paths, allocator arenas and all.)
        before_s, peak_s, slow_s = await _round(rss_server, 1, 0, 300)
        before_d, peak_d, _ = await _round(rss_server, 0, 1, 300)
        before100, peak100, slow100 = await _round(rss_server, 50, 50, 60, RATE_100)
    finally:
        for c in crowd:
            await c.close()
    stalled, deaf, hundred = peak_s - before_s, peak_d - before_d, peak100 - before100
    print(
        f"\nRSS: 1 stalled connection +{stalled / MB:.1f} MB (closed 4002: {slow_s}); "
        f"1 deaf connection +{deaf / MB:.1f} MB; "
        f"100 (50 stalled, 50 deaf) +{hundred / MB:.1f} MB (closed 4002: {slow100}); "
        f"baseline {before_s / MB:.0f} MB; {time.monotonic() - started:.0f} s"
    )
    assert slow_s + slow100 >= 46  # as a rule 4002 (else 4001, see Hostile.done)
    assert stalled <= 10 * MB and deaf <= 10 * MB
    assert hundred <= 200 * MB

