"""Long-poll answers (#17, transports/longpoll.py): a held poll is answered as soon as a
frame comes, and a newer poll answers the held one with 204. Recording fakes for ASGI
receive/send."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from anywire.core.rooms import Member
from anywire.server.app import Anywire
from anywire.transports.longpoll import LongPollTransport

from .helpers import issue
from .wsroom import deliver as _deliver


class PollPeer:
    """One poll request: ``receive`` blocks (counting its calls) until ``gone`` is set;
    what is sent is recorded."""

    def __init__(self) -> None:
        self.receives = 0
        self.gone = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def status(self) -> int | None:
        starts = [m["status"] for m in self.sent if m["type"] == "http.response.start"]
        return starts[0] if starts else None

    def events(self) -> list[Any]:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        frames = json.loads(body) if body else []
        return [f["d"] for f in frames if f["t"] == "event"]


def _scope(query: str, token: str | None = None) -> dict[str, Any]:
    headers = [] if token is None else [(b"x-anywire-token", token.encode())]
    return {
        "type": "http",
        "method": "GET",
        "path": "/anywire/poll",
        "query_string": query.encode(),
        "headers": headers,
    }


async def _opened() -> tuple[Anywire, LongPollTransport, str]:
    aw = Anywire(anonymous=True)
    await aw.start()
    transport = LongPollTransport(aw.host)
    issued = await issue(aw, "u1")
    peer = PollPeer()
    await transport(_scope(f"ticket={issued.ticket}"), peer.receive, peer.send)
    assert peer.status() == 200  # the hello
    aw.host.rooms.join("/", "room", Member(issued.sid, None, None))
    return aw, transport, issued.token


async def test_a_held_poll_is_answered_by_the_next_frame_and_a_newer_poll_ends_it() -> None:
    aw, transport, token = await _opened()
    try:
        first = PollPeer()
        held = asyncio.create_task(transport(_scope("ack=0", token), first.receive, first.send))
        async with asyncio.timeout(2):
            while first.receives == 0:  # held, listening for a disconnect
                await asyncio.sleep(0)
        second = PollPeer()
        newer = asyncio.create_task(transport(_scope("ack=0", token), second.receive, second.send))
        async with asyncio.timeout(2):
            await held
            while second.receives == 0:
                await asyncio.sleep(0)
        assert first.status() == 204  # answered by the newer poll
        _deliver(aw, 7)
        async with asyncio.timeout(2):
            await newer
        assert second.status() == 200 and second.events() == [7]
        first.gone.set()
        second.gone.set()
    finally:
        await aw.stop(grace=0.1)
