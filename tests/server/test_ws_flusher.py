"""The WebSocket transport's shared flusher, with recording fakes for ASGI receive/send:
one connection's failing or waiting send never holds up another's answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from anywire.core.closecodes import CloseCode
from anywire.server.app import Anywire
from anywire.server.socket import Socket
from anywire.transports.websocket import WebSocketTransport

from .helpers import issue

SCOPE = {"type": "websocket", "headers": [], "path": "/anywire/ws"}


class FakePeer:
    """One connection: scripted client messages in, everything sent recorded."""

    def __init__(self, ticket: str) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.inbox.put_nowait(
            {"type": "websocket.receive", "text": json.dumps({"t": "connect", "ticket": ticket})}
        )
        self.sent: list[dict[str, Any]] = []
        self.fail_after: int | None = None  # raise on this many-th websocket.send
        self.gate: asyncio.Event | None = None  # when set, sends wait for it
        self.changed = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        if self.gate is not None and message["type"] == "websocket.send":
            await self.gate.wait()
        sends = sum(m["type"] == "websocket.send" for m in self.sent)
        failing = self.fail_after is not None and sends >= self.fail_after
        if failing and message["type"] == "websocket.send":
            raise ValueError("a bug in a send path")
        self.sent.append(message)
        self.changed.set()

    def ask(self, seq: int, data: Any) -> None:
        frame = {"t": "event", "s": seq, "id": seq, "e": "echo", "d": data}
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})

    def acks(self) -> list[Any]:
        out = []
        for m in self.sent:
            if m["type"] != "websocket.send":
                continue
            frames = json.loads(m["text"])
            for f in frames if isinstance(frames, list) else [frames]:
                if f["t"] == "ack":
                    out.append(f["d"])
        return out

    async def wait_for(self, predicate: Any, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def _app() -> Anywire:
    aw = Anywire(anonymous=True)

    @aw.on("echo")
    def echo(sock: Socket, data: Any) -> Any:
        return data

    return aw


async def test_a_send_that_fails_ends_its_connection_only() -> None:
    aw = _app()
    await aw.start()
    transport = WebSocketTransport(aw.host)
    bad = FakePeer((await issue(aw, "bad")).ticket)
    good = FakePeer((await issue(aw, "good")).ticket)
    bad.fail_after = 1  # the hello goes out, the first answer raises
    tasks = [asyncio.create_task(transport(SCOPE, p.receive, p.send)) for p in (bad, good)]
    try:
        await bad.wait_for(lambda: len(bad.sent) >= 2)  # accept + hello
        await good.wait_for(lambda: len(good.sent) >= 2)
        bad.ask(1, "x")
        good.ask(1, "a")
        await good.wait_for(lambda: good.acks() == ["a"])
        await bad.wait_for(lambda: any(m["type"] == "websocket.close" for m in bad.sent))
        close = [m for m in bad.sent if m["type"] == "websocket.close"][-1]
        assert close["code"] == CloseCode.INTERNAL_ERROR
        good.ask(2, "b")  # the flusher still serves the healthy connection
        await good.wait_for(lambda: good.acks() == ["a", "b"])
    finally:
        for p in (bad, good):
            p.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        await aw.stop(grace=0.1)


async def test_a_send_that_waits_holds_up_only_its_own_connection() -> None:
    aw = _app()
    await aw.start()
    transport = WebSocketTransport(aw.host)
    slow = FakePeer((await issue(aw, "slow")).ticket)
    fast = FakePeer((await issue(aw, "fast")).ticket)
    tasks = [asyncio.create_task(transport(SCOPE, p.receive, p.send)) for p in (slow, fast)]
    try:
        await slow.wait_for(lambda: len(slow.sent) >= 2)
        await fast.wait_for(lambda: len(fast.sent) >= 2)
        slow.gate = asyncio.Event()  # its socket is paused from now on
        for i in range(1, 6):
            slow.ask(i, i)
            fast.ask(i, i)
            await fast.wait_for(lambda i=i: fast.acks() == list(range(1, i + 1)))
        assert slow.acks() == []
        slow.gate.set()  # it drains: every answer, once, in order
        await slow.wait_for(lambda: slow.acks() == [1, 2, 3, 4, 5])
    finally:
        for p in (slow, fast):
            p.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        await aw.stop(grace=0.1)


async def test_a_message_that_arrives_after_its_session_ended_closes_without_a_failure() -> None:
    # Seen in the chaos run: a node drained (or a session moved away) while a client's
    # message was on its way; feeding it raised "session unknown" out of the reader and
    # was logged as a failure of ours (a traceback per connection, close 4003).
    aw = _app()
    await aw.start()
    transport = WebSocketTransport(aw.host)
    issued = await issue(aw, "late")
    peer = FakePeer(issued.ticket)
    task = asyncio.create_task(transport(SCOPE, peer.receive, peer.send))
    try:
        await peer.wait_for(lambda: len(peer.sent) >= 2)  # accept + hello
        sess = aw.host.sessions.pop(issued.sid)  # gone, its link not told yet
        peer.inbox.put_nowait({"type": "websocket.receive", "text": '[{"t":"rx","n":0}]'})
        await peer.wait_for(lambda: any(m["type"] == "websocket.close" for m in peer.sent))
        close = [m for m in peer.sent if m["type"] == "websocket.close"][-1]
        assert close["code"] == CloseCode.SESSION_UNKNOWN
        aw.host.sessions[issued.sid] = sess  # for a clean stop
    finally:
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
        await aw.stop(grace=0.1)
