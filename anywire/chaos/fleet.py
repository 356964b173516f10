"""The clients of a chaos run: real Python clients that record everything they receive.

Each :class:`Member` is one :class:`~anywire.clients.python.Client` pinned to one
transport, with its own user, in a few rooms. It records every ``r`` (room), ``u``
(user) and ``s`` (session) event with its stream position and key, every ``$lost``,
every server call it answers, and its connection timeline (for reconnect times and for
the evidence of a failed check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import jwt

from ..clients.python import Client, EventInfo
from .app import AUDIENCE, SECRET

__all__ = ["Fleet", "Got", "Member"]

TRANSPORTS = ("websocket", "sse", "longpoll")

# The member whose client is running (its tasks inherit the context): its log lines go
# to its own timeline, the evidence of a slow reconnect or a failed check.
_current: ContextVar[Member | None] = ContextVar("anywire_chaos_member", default=None)


class _ToTimeline(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        member = _current.get()
        if member is not None:
            text = record.getMessage().replace("\n", " ")[:200]
            member.timeline.append((time.monotonic(), f"log: {text}"))


def token_for(user: str, ttl: float = 24 * 3600) -> str:
    """A JWT the chaos nodes accept."""
    now = int(time.time())
    claims = {"sub": user, "aud": AUDIENCE, "iat": now, "exp": now + int(ttl)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@dataclass(frozen=True, slots=True)
class Got:
    """One event a client received."""

    stream: str
    epoch: str
    offset: int
    key: str
    at: float


@dataclass
class Member:
    """One client of the fleet and what it recorded."""

    index: int
    transport: str
    user: str
    rooms: tuple[str, ...]
    client: Client
    sid: str | None = None
    received: list[Got] = field(default_factory=list)
    lost: list[dict[str, Any]] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # keys of server calls handled
    timeline: list[tuple[float, str]] = field(default_factory=list)
    reconnects: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)
    sids: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)  # how the client's own calls ended
    chat_every: float = 3.0  # mean seconds between the client's own calls
    _down_since: float | None = None
    _chatter: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"c{self.index}/{self.transport}"

    def attach_recorders(self) -> None:
        client = self.client
        for event in ("r", "u", "s"):
            client.on(event)(self._record)
        client.on("$lost")(self._record_lost)
        client.on("call")(self._answer)
        client.on_state(self._state)

    def _record(self, data: Any, info: EventInfo) -> None:
        if info.offset is None or not isinstance(data, dict):
            return
        stream, epoch, offset = info.offset
        self.received.append(Got(stream, epoch, offset, str(data.get("k")), time.monotonic()))

    def _record_lost(self, data: Any) -> None:
        if isinstance(data, dict):
            self.lost.append({**data, "at": time.monotonic()})
            self.timeline.append((time.monotonic(), f"$lost {data}"))

    def _answer(self, data: Any, info: EventInfo) -> Any:
        key = str(data.get("k")) if isinstance(data, dict) else "?"
        self.answered.append(key)
        return key

    def _state(self, state: str) -> None:
        now = time.monotonic()
        self.timeline.append((now, f"{state} via {self.client.transport}"))
        if state == "reconnecting" and self._down_since is None:
            self._down_since = now
        elif state == "connected":
            if self.client.sid is not None:
                self.sids.add(self.client.sid)
                what = f"sid {self.client.sid} recovered={self.client.recovered}"
                self.timeline.append((now, what))
            if self._down_since is not None:
                self.reconnects.append((self._down_since, now - self._down_since))
                self._down_since = None

    async def start(self, timeout: float) -> None:
        """Connect and join every room (bounded), then call the server now and then."""
        _current.set(self)
        async with asyncio.timeout(timeout):
            await self.client.connect()
            self.sid = self.client.sid
            for room in self.rooms:
                await self.client.join(room, timeout=timeout)
        self._chatter = asyncio.ensure_future(self._chat())

    async def _chat(self) -> None:
        """A call every ``chat_every`` s on average (the client's own requests must
        survive the faults too)."""
        n = 0
        while True:
            await asyncio.sleep(self.chat_every * (0.5 + random.random()))
            n += 1
            try:
                answer = await self.client.call("echo", n, timeout=30)
                self.calls["ok" if answer == n else "wrong answer"] += 1
            except Exception as exc:
                self.calls[type(exc).__name__] += 1
                self.timeline.append((time.monotonic(), f"call {n} failed: {exc!r}"))

    async def stop_chatter(self) -> None:
        if self._chatter is not None:
            self._chatter.cancel()
            await asyncio.gather(self._chatter, return_exceptions=True)


class Fleet:
    """``count`` clients spread evenly over the transports, each in a few of ``rooms``."""

    def __init__(
        self,
        url: str,
        count: int,
        rooms: list[str],
        rooms_per_client: int = 2,
        transports: tuple[str, ...] = TRANSPORTS,
        codec: str = "msgpack",
    ) -> None:
        self.members: list[Member] = []
        client_log = logging.getLogger("anywire.client")
        if not any(isinstance(h, _ToTimeline) for h in client_log.handlers):
            client_log.addHandler(_ToTimeline())
            client_log.setLevel(logging.INFO)
            client_log.propagate = False  # into the timelines, not the console
        for i in range(count):
            transport = transports[i % len(transports)]
            picked = tuple(rooms[(i + k * 3) % len(rooms)] for k in range(rooms_per_client))
            user = f"u{i}"
            client = Client(
                url,
                token=token_for(user),
                transports=(transport,),
                codec=codec,
                backoff_base=0.1,
                backoff_max=1.0,
                connect_timeout=5.0,
                ack_timeout=30.0,
            )
            member = Member(i, transport, user, tuple(dict.fromkeys(picked)), client)
            # About 30 client calls per second in all, whatever the fleet's size: the
            # clients share one process with the publisher, and starving it would test
            # the harness rather than the servers.
            member.chat_every = max(3.0, count / 30)
            member.attach_recorders()
            self.members.append(member)

    async def start(self, timeout: float = 60.0, at_once: int = 15) -> None:
        """Connect every client and join its rooms, ``at_once`` at a time (bounded)."""
        gate = asyncio.Semaphore(at_once)

        async def one(member: Member) -> None:
            async with gate:
                await member.start(timeout)

        async with asyncio.timeout(timeout):
            await asyncio.gather(*(one(m) for m in self.members))

    async def close(self) -> None:
        for member in self.members:
            await member.stop_chatter()
        for member in self.members:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await member.client.close()

    def sessions(self) -> dict[str, Member]:
        """Member by its first session id."""
        return {m.sid: m for m in self.members if m.sid is not None}
