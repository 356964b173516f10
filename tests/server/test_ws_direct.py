"""The WebSocket writer's direct write (#17, transports/direct.py): where the server puts
a direct writer in the scope, messages go through it, not through ``send()``; where it
declines (socket buffer full, closing), ``send()`` carries the message, and nothing is
lost or reordered either way. Recording fakes for ASGI receive/send and for the direct
writer, as in test_ws_adaptive.py; tests/e2e runs the real one (``anywire serve``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from anywire.server.app import Anywire
from anywire.transports.direct import DIRECT_KEY

from .test_ws_flusher import FakePeer
from .wsroom import connected, deliver, end, quiet


class DirectPeer(FakePeer):
    """A peer whose server offers a direct write; ``full`` makes it decline. ``order``
    holds the text of every message written, by either path, in the order written."""

    def __init__(self, ticket: str) -> None:
        super().__init__(ticket)
        self.order: list[str] = []
        self.direct: list[bool] = []  # the binary flag of each direct write
        self.full = False

    def write_now(self, data: bytes, binary: bool) -> bool:
        if self.full:
            return False
        self.direct.append(binary)
        self.order.append(data.decode())
        self.changed.set()
        return True

    async def send(self, message: dict[str, Any]) -> None:
        await super().send(message)
        if message["type"] == "websocket.send":
            self.order.append(message["text"])

    def events(self) -> list[Any]:
        """The data of every event, by whichever path, in the order written."""
        out = []
        for text in self.order:
            frames = json.loads(text)
            for f in frames if isinstance(frames, list) else [frames]:
                if f["t"] == "event" and f["e"] == "m":
                    out.append(f["d"])
        return out

    def sends(self) -> int:
        return sum(m["type"] == "websocket.send" for m in self.sent)

async def _connected(n: int) -> tuple[Anywire, list[DirectPeer], list[asyncio.Task[None]]]:
    """``n`` direct-writing peers in room "room"; the hello may come either way."""
    return await connected(
        n, DirectPeer, lambda p: len(p.order) >= 1, lambda p: {DIRECT_KEY: p.write_now}
    )


async def test_events_go_through_the_direct_write_not_send() -> None:
    aw, peers, tasks = await _connected(2)
    try:
        for i in range(3):
            await quiet()
            deliver(aw, i)
            for p in peers:
                assert p.events() == list(range(i + 1))  # written in the delivering call
        for p in peers:
            assert p.sends() == 0  # the hello and every event went the direct way
            assert p.direct and not any(p.direct)  # JSON: text messages
    finally:
        await end(aw, peers, tasks)


async def test_a_declined_direct_write_goes_through_send_in_order() -> None:
    aw, peers, tasks = await _connected(2)
    declining, other = peers
    try:
        await quiet()
        deliver(aw, 0)
        declining.full = True  # its socket's buffer is full: send() must carry on
        for i in range(1, 4):
            await quiet()
            deliver(aw, i)
        await declining.wait_for(lambda: declining.events() == [0, 1, 2, 3])
        declining.full = False
        for i in range(4, 6):
            await quiet()
            deliver(aw, i)
        await declining.wait_for(lambda: declining.events() == [0, 1, 2, 3, 4, 5])
        assert other.events() == [0, 1, 2, 3, 4, 5]
        assert declining.sends() >= 1  # the declined ones went through send()
        assert other.sends() == 0
    finally:
        await end(aw, peers, tasks)


async def test_a_batch_and_an_answer_take_the_direct_write_too() -> None:
    aw, peers, tasks = await _connected(1)
    (peer,) = peers
    try:
        await quiet()
        for i in range(5):  # a burst in one iteration: the first at once, the rest batched
            deliver(aw, i)
        await peer.wait_for(lambda: peer.events() == [0, 1, 2, 3, 4])
        peer.ask(1, "x")  # an echo: answered by the reader (_Writer.answer)
        await peer.wait_for(lambda: any('"t":"ack"' in t for t in peer.order))
        assert peer.sends() == 0
    finally:
        await end(aw, peers, tasks)


async def test_a_push_while_an_answer_waits_for_its_round_goes_out_after_it() -> None:
    """The reader's answer is written one iteration later (_Writer.answer); an event
    pushed in between finds the writer busy, so the answer's write must take it too,
    though no outgoing() ran before it to tell what is pending (link.more is stale)."""
    aw, peers, tasks = await _connected(1)
    (peer,) = peers

    @aw.on("later")
    def later(sock: Any, data: Any) -> Any:
        # Runs in the next iteration, before the answer's round (added after this call).
        asyncio.get_running_loop().call_soon(deliver, aw, 99)
        return data

    try:
        await quiet()
        frame = {"t": "event", "s": 1, "id": 1, "e": "later", "d": "x"}
        peer.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})
        await peer.wait_for(lambda: peer.events() == [99])
        assert any('"t":"ack"' in t for t in peer.order)
    finally:
        await end(aw, peers, tasks)


async def test_a_burst_past_one_batch_goes_out_whole_with_nothing_after_it() -> None:
    """More than one batch waits when the batched write runs (past ``max_batch`` frames,
    or past the byte cap of one message): the writer goes on by itself until nothing is
    left, though no push comes after the burst to wake it again."""
    aw, peers, tasks = await _connected(1)
    (peer,) = peers
    many = 2 * aw.host.settings.max_batch + 5
    big = "x" * 40_000  # two of these pass the byte cap of one message (64 KB)
    try:
        await quiet()
        for i in range(many):  # one iteration: the first at once, the rest batched
            deliver(aw, i)
        await peer.wait_for(lambda: peer.events() == list(range(many)))
        await quiet()
        for i in range(3):
            deliver(aw, [i, big])
        await peer.wait_for(lambda: len(peer.events()) == many + 3)
        assert [e[0] for e in peer.events()[many:]] == [0, 1, 2]
        assert peer.sends() == 0
    finally:
        await end(aw, peers, tasks)
