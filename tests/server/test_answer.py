"""SessionHost.answer(), the request/response fast path, against feed() + outgoing().

Two hosts with the same handlers get the same client frames: one through answer() (and
feed() where it declines), the other only through feed(). What each would write after
every frame must be the same bytes, in every codec.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from anywire.core.frames import Connect, Event, Frame, Ping, Rx
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.websocket import INFO as WEBSOCKET

from .helpers import issue


class NotSendable:
    pass


def _app() -> Anywire:
    aw = Anywire(anonymous=True)

    @aw.on("echo")
    def echo(sock: Any, data: Any) -> Any:
        return data

    @aw.on("fail")
    def fail(sock: Any, data: Any) -> Any:
        raise ValueError("no such thing")

    @aw.on("odd")
    def odd(sock: Any, data: Any) -> Any:
        return NotSendable()

    @aw.on("slow")
    async def slow(sock: Any, data: Any) -> Any:
        return data

    return aw


@asynccontextmanager
async def _attached(codec: str) -> Any:
    aw = _app()
    await aw.start()
    try:
        _, _, ticket, _ = await issue(aw, codec=codec)
        link = Link(WEBSOCKET, aw.host.codec(codec), aw.websocket.traffic)
        await aw.host.attach(link, Connect(ticket))
        aw.host.outgoing(link)  # the hello (it names the session: not compared)
        yield aw, link
    finally:
        await aw.stop(grace=0.1)


def _written(aw: Anywire, link: Link) -> bytes:
    frames = aw.host.outgoing(link)
    if not frames:
        return b""
    return frames[0] if len(frames) == 1 else link.codec.batch(frames)


def _script() -> Iterator[Frame]:
    yield Event(1, "echo", {"ts": 1, "p": "x" * 70}, 1)
    yield Event(2, "echo", [1, "two", None, True, 2.5], 2)
    yield Event(3, "echo", None, 3)
    yield Event(3, "echo", "a duplicate", 3)
    yield Event(4, "echo", "no ack asked")  # no id: not a request
    yield Event(5, "fail", None, 5)  # the handler raises: an error ack
    yield Event(6, "odd", None, 6)  # a result no codec can carry: an error ack
    yield Event(7, "nobody", None, 7)  # no handler
    yield Ping()
    yield Event(8, "echo", "after a ping", 8)
    yield Rx(0)
    yield Event(9, "echo", {"nested": {"deep": [1, 2, {"x": "é"}]}}, 9)


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_answers_are_byte_for_byte_what_feed_and_outgoing_write(codec: str) -> None:
    async with _attached(codec) as (fast, fast_link), _attached(codec) as (slow, slow_link):
        assert fast_link.sid is not None and slow_link.sid is not None
        taken = 0
        for frame in _script():
            answer = fast.host.answer(fast_link, frame)
            if answer is None:
                fast.host.feed(fast_link.sid, [frame])
            elif answer:
                taken += 1
            slow.host.feed(slow_link.sid, [frame])
            # A handler task (unknown event) answers a loop iteration later on both.
            await asyncio.sleep(0.01)
            got = (answer or b"") + _written(fast, fast_link)
            assert got == _written(slow, slow_link), frame
        assert taken == 6  # events 1, 2, 3, 6 (its error ack), 8 and 9 were answered whole
        assert fast.websocket.traffic.frames_in == slow.websocket.traffic.frames_in
        assert fast.websocket.traffic.frames_out == slow.websocket.traffic.frames_out


async def test_it_declines_what_it_cannot_answer_whole_without_touching_anything() -> None:
    async with _attached("json") as (aw, link):
        assert link.sid is not None
        sess = aw.host.sessions[link.sid]
        before = (sess.in_last, sess.out_seq, aw.websocket.traffic.frames_in)
        assert aw.host.answer(link, Event(1, "echo", None)) is None  # no ack id
        assert aw.host.answer(link, Event(1, "slow", None, 1)) is None  # async def
        assert aw.host.answer(link, Event(1, "nobody", None, 1)) is None  # no handler
        assert aw.host.answer(link, Ping()) is None  # not an event
        other = Link(WEBSOCKET, link.codec)
        other.sid = link.sid
        assert aw.host.answer(other, Event(1, "echo", None, 1)) is None  # not the live one
        aw.host.feed(link.sid, [Ping()])  # a pong waits to be written
        assert aw.host.answer(link, Event(1, "echo", None, 1)) is None
        assert (sess.in_last, sess.out_seq) == before[:2]
        assert aw.websocket.traffic.frames_in == before[2] + 1  # the ping only


async def test_something_pending_keeps_the_general_path_so_nothing_is_reordered() -> None:
    async with _attached("json") as (aw, link):
        assert link.sid is not None
        await aw.emit("news", {"n": 1}, room=None, user="u1")
        assert aw.host.has_pending(link)
        assert aw.host.answer(link, Event(1, "echo", "x", 1)) is None
        aw.host.feed(link.sid, [Event(1, "echo", "x", 1)])
        frames = [link.codec.decode(f) for f in aw.host.outgoing(link)]
        assert [f["t"] for f in frames] == ["rx", "event", "ack"]
        assert [f["s"] for f in frames[1:]] == [1, 2]
