"""In-process sessions for the scale tests that drive one node's host directly (a real
redis-server behind it): connect, feed frames, read what the session was sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from anywire.core.frames import Connect
from anywire.server.app import Anywire
from anywire.transports.base import Link, TransportInfo
from anywire.transports.longpoll import INFO as LONGPOLL
from anywire.transports.sse import INFO as SSE
from anywire.transports.websocket import INFO as WEBSOCKET
from tests.server.helpers import frames, issue

__all__ = ["INFOS", "Peer", "until"]

INFOS = [WEBSOCKET, SSE, LONGPOLL]
"""The transports' connection kinds, to parametrize over (``ids=lambda i: i.name``)."""


class Peer:
    """One session on ``aw`` and everything it was sent, in order."""

    def __init__(self, aw: Anywire, info: TransportInfo) -> None:
        self.aw, self.info = aw, info
        self.sent: list[dict[str, object]] = []
        self.link: Link | None = None
        self.sid = ""

    async def connect(self) -> None:
        issued = await issue(self.aw)
        self.link = Link(self.info, self.aw.host.codec("json"))
        await self.aw.host.attach(self.link, Connect(issued.ticket))
        self.sid = issued.sid

    def read(self) -> list[dict[str, object]]:
        assert self.link is not None
        self.sent += frames(self.aw, self.link)
        return self.sent

    def answer(self, ack_id: int) -> dict[str, object] | None:
        """The ack of request ``ack_id``, if it came."""
        return next((f for f in self.read() if f["t"] == "ack" and f.get("id") == ack_id), None)

    def answered(self, ack_id: int) -> Callable[[], bool]:
        return lambda: self.answer(ack_id) is not None

    def events(self, name: str) -> list[object]:
        """The data of the events ``name`` sent, in order."""
        return [f["d"] for f in self.read() if f.get("e") == name]


async def until(check: Callable[[], bool], timeout: float) -> None:
    """Wait (bounded) until ``check()`` holds, looking every 20 ms."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)
