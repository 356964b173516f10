"""The anywire server the benchmarks load: one room, an echo handler, a publisher.

Run as ``python -m anywire.bench.app --port P``. Besides the anywire endpoints it answers

* ``POST /ctl/start?secs=S&size=B&burst=K``: publish ~B-byte events to room ``bench`` as
  fast as the server can deliver them for S seconds, K per event-loop tick;
* ``POST /ctl/start?secs=S&size=B&rate=R``: publish R events per second on a fixed
  schedule (open loop: :func:`paced`), whatever the server does;
* ``POST /ctl/pace?rate=R&secs=S``: publish event ``n`` with data 1, 2, 3... to room
  ``bench`` at R events per second for S seconds, whatever the clients do (the reconnect
  storm's fan-out, bench/storm.py: every client must see each number once);
* ``POST /ctl/drop``: close every live connection with 4000 (sessions stay resumable);
* ``GET /ctl/stats``: ``{"published": n, "paced": n, "sessions": n}``;
* ``GET /ctl/memory[?by=lineno|traceback]``: live Python allocations by file (or line,
  or stack), ``{file: [bytes, blocks]}``, when the server runs under ``tracemalloc``
  (``PYTHONTRACEMALLOC=N``; ``bench/memory_breakdown.py``).

Every session joins ``bench`` in its connect hook *without* presence events (a 2,000-client
setup would otherwise cost 2,000^2 / 2 presence deliveries before measuring anything), and
leaves it without them too (``Member.quiet``: a reconnect storm whose sessions expire
together would otherwise stall the node on 10,000^2 ``$leave`` deliveries).
Heartbeats are stretched and the flood limit lifted so that neither interferes with a
10-second run; everything else is the default configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from ..core.closecodes import CloseCode
from ..core.rooms import Member
from ..core.settings import Settings
from ..core.streams import room_stream
from ..server.app import Anywire
from ..server.broker_memory import MemoryBroker
from ..server.socket import Socket
from ..server.stale import Stale

__all__ = [
    "BENCH_SETTINGS", "Pacer", "Publisher", "make_app", "paced", "run_control", "serve_peer"
]

ROOM = "bench"

BENCH_SETTINGS = Settings(
    ping_interval=300.0,
    ping_timeout=60.0,
    # Every simulated client comes from this machine's address.
    max_sessions=10_000_000,
    max_sessions_per_user=10_000_000,
    max_sessions_per_ip=10_000_000,
    negotiate_rate=1e9,
    negotiate_burst=1_000_000_000,
    flood_rate=1e9,
    flood_burst=1_000_000_000,
    resume_window=5.0,
    # The publisher's back-pressure below bounds the lag in frames; large events must not
    # trip the byte budget first.
    outbox_bytes=1 << 30,
)

# The publisher pauses while a sampled session has more than this many frames not yet
# handed to its connection (below outbox_size, so nobody is cut off as a slow consumer).
MAX_LAG = 400

# Bursts published through Redis at once (each a gather of its events' publishes).
_BURSTS_IN_FLIGHT = 4


async def paced(secs: float, rate: float) -> AsyncIterator[int]:
    """The open-loop schedule: ``rate`` events per second for ``secs`` seconds, each
    yielded once it is due as its due time (microseconds of CLOCK_MONOTONIC, the clock
    the load generator reads), whatever the server does meanwhile.

    An event that comes due while the loop is busy is yielded as soon as the publisher
    runs again, still stamped with its due time: a server that falls behind shows it in
    the latency instead of being offered less (no coordinated omission). The loop's timer
    wakes up to a millisecond late (epoll's resolution), for every Python server alike.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    start = time.monotonic()
    period = 1.0 / rate
    k = 0
    while k * period < secs:
        due = start + k * period
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        yield int(due * 1_000_000)
        k += 1


class Publisher:
    """Publishes timestamped events to the bench room with back-pressure."""

    def __init__(self, aw: Anywire) -> None:
        self.aw = aw
        self.published = 0
        self.task: asyncio.Task[None] | None = None

    def start(self, secs: float, size: int, burst: int, rate: float = 0.0) -> None:
        """Publish for ``secs``: ``rate`` events/s on a fixed schedule if given (open
        loop), else ``burst`` events per loop tick as fast as delivery allows."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        run = self._paced(secs, size, rate) if rate > 0 else self._run(secs, size, burst)
        self.task = asyncio.create_task(run)

    async def _paced(self, secs: float, size: int, rate: float) -> None:
        pad = "x" * max(1, size - 60)
        emit = self.aw.emit
        async for ts in paced(secs, rate):
            await emit("m", {"ts": ts, "p": pad}, room=ROOM)
            self.published += 1

    def _lagging(self, sample: list[Any]) -> bool:
        return any(s.out_seq - s.written > MAX_LAG for s in sample if s.connection is not None)

    async def _run(self, secs: float, size: int, burst: int) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + secs
        pad = "x" * max(1, size - 60)
        host = self.aw.host
        sids = host.rooms.sids("/", ROOM)
        step = max(1, len(sids) // 16)
        sample = [host.sessions[sid] for sid in sids[::step] if sid in host.sessions]
        emit = self.aw.emit
        remote = not isinstance(self.aw.broker, MemoryBroker)
        in_flight: set[asyncio.Future[Any]] = set()
        while loop.time() < end:
            if remote:
                # Through Redis a burst is published concurrently, as many handlers
                # publishing at once would: awaiting each publish's round trip in turn
                # would measure the publisher, and the events would reach the node one
                # per read, each connection writing them one by one. A few bursts are
                # in flight at once, for the same reason: waiting for each burst's round
                # trip before the next left two nodes half idle (the publisher, not
                # the nodes, was the limit). The lag check below still holds it back.
                if len(in_flight) >= _BURSTS_IN_FLIGHT:
                    _, in_flight = await asyncio.wait(
                        in_flight, return_when=asyncio.FIRST_COMPLETED
                    )
                in_flight.add(
                    asyncio.gather(
                        *(
                            emit("m", {"ts": time.monotonic_ns() // 1000, "p": pad}, room=ROOM)
                            for _ in range(burst)
                        )
                    )
                )
            else:  # in memory an emit does not wait: one after another is cheapest
                for _ in range(burst):
                    await emit("m", {"ts": time.monotonic_ns() // 1000, "p": pad}, room=ROOM)
            self.published += burst
            await asyncio.sleep(0)
            while self._lagging(sample) and loop.time() < end:
                await asyncio.sleep(0.001)
        if in_flight:
            await asyncio.wait(in_flight)


class Pacer:
    """Publishes numbered events to the bench room at a fixed rate (an open loop)."""

    def __init__(self, aw: Anywire) -> None:
        self.aw = aw
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    def start(self, rate: float, secs: float) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = asyncio.create_task(self._run(rate, secs))

    async def _run(self, rate: float, secs: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        count = int(rate * secs)
        for i in range(count):
            # Due times from the start, so a slow tick does not shift every later event.
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            self.sent += 1
            await self.aw.emit("n", self.sent, room=ROOM)


def make_app(redis: str | None = None, settings: Settings = BENCH_SETTINGS) -> Anywire:
    """The benchmark application (on the Redis broker at ``redis`` if given)."""
    broker = None
    if redis:
        try:
            from ..server.broker_redis import RedisBroker  # type: ignore[import-not-found]
        except ImportError:
            raise SystemExit("--redis: this build of anywire has no Redis broker yet") from None
        broker = RedisBroker(redis)
    aw = Anywire(anonymous=True, settings=settings, broker=broker)
    publisher = Publisher(aw)
    pacer = Pacer(aw)

    @aw.on_connect
    async def join_silently(sock: Socket) -> None:
        aw.host.rooms.join(sock.namespace, ROOM, Member(sock.sid, sock.user, None, quiet=True))
        # Put in the room by hand (not through a join), so the node is told it consumes
        # the room's stream: on Redis a node receives only the streams it hosts.
        await aw.broker.want(room_stream(sock.namespace, ROOM), sock.sid)

    @aw.on("echo")
    def echo(sock: Socket, data: Any) -> Any:
        return data

    def start(q: dict[str, str]) -> None:
        publisher.start(
            float(q.get("secs", 10)),
            int(q.get("size", 100)),
            int(q.get("burst", 1)),
            float(q.get("rate", 0)),
        )

    def pace(q: dict[str, str]) -> None:
        pacer.start(float(q["rate"]), float(q.get("secs", 10)))

    def drop() -> int:
        # Every live connection closed with a reconnect code (the sessions stay resumable).
        live = [s for s in aw.host.sessions.values() if s.connection is not None]
        for sess in live:
            aw.host.close_session(sess, CloseCode.SHUTDOWN, "bench: reconnect storm")
        return len(live)

    aw.fallback = run_control(
        start,
        lambda: {
            "published": publisher.published,
            "paced": pacer.sent,
            "sessions": len(aw.host.sessions),
            # Load shedding (server/overload.py): the loop's last lateness, refusals.
            "loop_lag": round(aw.host.issuer.gate.lag.lag, 3),
            "shed": aw.host.issuer.gate.lag.shed,
            "stale": Stale.shed,  # negotiates shed for their age (server/stale.py)
            "gone": Stale.gone,  # negotiates and upgrades whose client had left (stale.py)
        },
        drop,
        pace,
    )
    return aw


def run_control(start: Any, stats: Any, drop: Any = None, pace: Any = None) -> Any:
    """A tiny ASGI app for ``/ctl/start`` and ``/ctl/stats`` (shared by the peer apps),
    and ``/ctl/drop`` and ``/ctl/pace`` when ``drop`` and ``pace`` are given."""

    async def control(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        if scope["path"] == "/ctl/start":
            start(query)
            body = b'{"ok":true}'
        elif scope["path"] == "/ctl/pace" and pace is not None:
            pace(query)
            body = b'{"ok":true}'
        elif scope["path"] == "/ctl/stats":
            body = json.dumps(stats()).encode()
        elif scope["path"] == "/ctl/drop" and drop is not None:
            body = json.dumps({"dropped": drop()}).encode()
        elif scope["path"] == "/ctl/memory":
            body = json.dumps(_traced(query.get("by", "filename"))).encode()
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return control


def _traced(by: str) -> dict[str, list[int]]:
    """Live traced allocations grouped by the file (``by=filename``), line (``lineno``)
    or stack (``traceback``) that made them, empty when not tracing. A collection runs
    first so that garbage awaiting the cycle collector is not counted."""
    import gc
    import tracemalloc

    if not tracemalloc.is_tracing():
        return {}
    gc.collect()
    key = by if by in ("lineno", "traceback") else "filename"
    stats = tracemalloc.take_snapshot().statistics(key)
    if key == "filename":
        return {s.traceback[0].filename: [s.size, s.count] for s in stats}
    return {" <- ".join(map(str, s.traceback)): [s.size, s.count] for s in stats}


def serve_peer(app: Any) -> None:
    """Serve a peer app for bench/compare.py (``--port P``) on the uvicorn settings anywire
    runs with: sans-I/O WebSockets, no per-message deflate, no uvicorn pings."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        log_level="warning",
    )


def main() -> None:
    """Serve the benchmark app (uvicorn, sans-I/O WebSocket, anywire's shutdown)."""
    from ..server.cli import run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis", default=None, help="redis://... to use the Redis broker")
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="anywire's default Settings (limits, heartbeats, resume window) instead of the "
        "bench's lifted ones: the reconnect storm meets what an operator runs",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="with --defaults: the node's session cap (the default is 10,000, which a "
        "10,000-client storm reaches while abandoned attempts still hold their slots)",
    )
    parser.add_argument(
        "--backlog", type=int, default=None, help="the listening socket's accept queue"
    )
    args = parser.parse_args()
    settings = BENCH_SETTINGS
    if args.defaults:
        settings = (
            Settings() if args.max_sessions is None else Settings(max_sessions=args.max_sessions)
        )
    backlog = {} if args.backlog is None else {"backlog": args.backlog}
    run(make_app(args.redis, settings), args.host, args.port, "warning", **backlog)


if __name__ == "__main__":
    main()
