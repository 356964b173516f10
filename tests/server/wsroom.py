"""One room of WebSocket connections on an in-process host, for the writer tests
(test_ws_adaptive.py, test_ws_direct.py): recording peers (test_ws_flusher.FakePeer or a
subclass) joined to room "room", events handed to the host as the broker would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from anywire.core.rooms import Member
from anywire.server.app import Anywire
from anywire.server.broker import Envelope
from anywire.transports.websocket import WebSocketTransport

from .helpers import issue
from .test_ws_flusher import SCOPE, FakePeer

P = TypeVar("P", bound=FakePeer)


async def connected(
    n: int,
    peer: Callable[[str], P],
    hello: Callable[[P], bool],
    extensions: Callable[[P], dict[str, Any]] | None = None,
) -> tuple[Anywire, list[P], list[asyncio.Task[None]]]:
    """``n`` peers made by ``peer(ticket)``, each connected (``hello(peer)`` true, waited
    for) and joined to room "room"; ``extensions`` gives a peer's ASGI scope extensions."""
    aw = Anywire(anonymous=True)
    await aw.start()
    transport = WebSocketTransport(aw.host)
    peers: list[P] = []
    tasks: list[asyncio.Task[None]] = []
    for i in range(n):
        issued = await issue(aw, f"u{i}")
        p = peer(issued.ticket)
        scope = {**SCOPE, "extensions": extensions(p)} if extensions else SCOPE
        peers.append(p)
        tasks.append(asyncio.create_task(transport(scope, p.receive, p.send)))
        await p.wait_for(lambda p=p: hello(p))
        aw.host.rooms.join("/", "room", Member(issued.sid, None, None))
    return aw, peers, tasks


async def end(aw: Anywire, peers: list[P], tasks: list[asyncio.Task[None]]) -> None:
    """Disconnect every peer, wait (bounded) for their transports, stop the host."""
    for p in peers:
        p.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    await aw.stop(grace=0.1)


async def quiet() -> None:
    """Let a few loop iterations pass with nothing written (the writers' count rests)."""
    for _ in range(3):
        await asyncio.sleep(0)


def deliver(aw: Anywire, data: Any) -> None:
    """A room event handed to this node's sessions (what the broker does on publish),
    in a plain call: nothing in it can wait."""
    aw.host.deliver(Envelope("room", "/", "room", "m", data))
