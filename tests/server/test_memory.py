"""Memory bounded per connection, in-process (real host, real Links, no network): the
outbox in bytes, the Link's own queue, join answers and metadata, and a WebSocket whose
peer stops reading (issue #13)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from anywire.core.closecodes import CloseCode
from anywire.core.codec import Outgoing
from anywire.core.frames import Connect, Event, Join
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.server.socket import Socket
from anywire.transports.base import LINK_QUEUE_FRAMES, Link
from anywire.transports.websocket import INFO as WEBSOCKET
from anywire.transports.websocket import WebSocketTransport

from .helpers import frames, issue
from .test_ws_flusher import SCOPE, FakePeer


async def _attached(aw: Anywire, user: str = "u1") -> tuple[Link, Any]:
    ticket = (await issue(aw, user)).ticket
    link = Link(WEBSOCKET, aw.host.codec("json"))
    await aw.host.attach(link, Connect(ticket))
    assert link.sid is not None
    return link, aw.host.sessions[link.sid]



async def _answer(aw: Anywire, link: Link, ack_id: int) -> dict[str, Any]:
    """The ack answering ``ack_id`` once the host has produced it (bounded wait)."""
    async with asyncio.timeout(5):
        while True:
            for f in frames(aw, link):
                if f["t"] == "ack" and f["id"] == ack_id:
                    return f
            await link.wait(0.5)


async def test_unwritten_bytes_over_the_budget_close_a_slow_consumer() -> None:
    aw = Anywire(anonymous=True, settings=Settings(outbox_bytes=50_000))
    await aw.start()
    try:
        link, sess = await _attached(aw)
        pushed = 0
        while link.closing is None and pushed < 10:  # the writer is stuck: nothing written
            aw.host.push(sess, Outgoing("event", {"e": "n", "d": "x" * 10_000}))
            pushed += 1
        assert link.closing is not None and link.closing[0] == CloseCode.SLOW_CONSUMER
        assert pushed <= 6  # 10 KB each: well before the frame-count bound (1000)
        assert sess.outbox_bytes <= 50_000 + 10_100
        assert aw.host.sessions.get(sess.sid) is sess  # resumable, not ended
    finally:
        await aw.stop(grace=0.1)


async def test_acks_count_in_the_byte_budget() -> None:
    aw = Anywire(anonymous=True, settings=Settings(outbox_bytes=50_000))

    @aw.on("big")
    def big(sock: Socket, data: Any) -> str:
        return "y" * 10_000

    await aw.start()
    try:
        link, sess = await _attached(aw)
        frames(aw, link)  # the hello
        aw.host.feed(sess.sid, [Event(s, "big", None, s) for s in range(1, 11)])
        assert link.closing is not None and link.closing[0] == CloseCode.SLOW_CONSUMER
        assert sess.outbox_bytes <= 50_000 + 10_100
    finally:
        await aw.stop(grace=0.1)


async def test_a_reader_that_keeps_up_with_big_frames_is_not_cut_off() -> None:
    aw = Anywire(anonymous=True, settings=Settings(outbox_bytes=50_000))
    await aw.start()
    try:
        link, sess = await _attached(aw)
        for _ in range(50):
            aw.host.push(sess, Outgoing("event", {"e": "n", "d": "x" * 10_000}))
            aw.host.outgoing(link)
        assert link.closing is None
        assert sess.outbox_bytes <= 50_000 + 10_100
    finally:
        await aw.stop(grace=0.1)


async def test_the_link_queue_is_bounded() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        link, _ = await _attached(aw)
        for _ in range(LINK_QUEUE_FRAMES * 3):  # error frames nobody reads
            link.push(b'{"t":"error","c":4502,"m":"bad"}')
        assert len(link.queued) <= LINK_QUEUE_FRAMES
        assert link.closing is not None and link.closing[0] == CloseCode.SLOW_CONSUMER
        link2, _ = await _attached(aw, "u2")
        link2.push(b"x" * 300_000)  # one frame over the byte bound
        assert link2.closing is not None and link2.closing[0] == CloseCode.SLOW_CONSUMER
    finally:
        await aw.stop(grace=0.1)


async def test_meta_over_max_meta_size_is_refused_and_not_kept() -> None:
    aw = Anywire(anonymous=True, settings=Settings(max_meta_size=1024))
    await aw.start()
    try:
        link, sess = await _attached(aw)
        aw.host.feed(sess.sid, [Join(1, 1, "lobby", {"pad": "z" * 2000})])
        ack = await _answer(aw, link, 1)
        assert ack["ok"] is False and ack["err"]["code"] == "bad_request"
        assert "max_meta_size" in ack["err"]["message"]
        assert aw.presence("lobby") == []
        aw.host.feed(sess.sid, [Join(2, 2, "lobby", {"pad": "z" * 900})])
        ack = await _answer(aw, link, 2)
        assert ack["ok"] is True and ack["d"]["count"] == 1 and ack["d"]["partial"] is False
    finally:
        await aw.stop(grace=0.1)


async def test_a_join_answer_lists_at_most_presence_limit_members() -> None:
    aw = Anywire(anonymous=True, settings=Settings(presence_limit=5))
    await aw.start()
    try:
        for i in range(8):
            _, other = await _attached(aw, f"m{i}")
            await aw.host.joins.enter(other, "busy", {"n": i}, None)
        link, sess = await _attached(aw, "joiner")
        aw.host.feed(sess.sid, [Join(1, 1, "busy", {"me": True})])
        ack = await _answer(aw, link, 1)
        answer = ack["d"]
        assert answer["count"] == 9 and answer["partial"] is True
        assert len(answer["presence"]) == 5
        assert answer["presence"][0]["sid"] == sess.sid  # the joiner is always listed
        assert len(json.dumps(answer)) < 1000
    finally:
        await aw.stop(grace=0.1)


async def test_a_websocket_whose_peer_stops_reading_is_cut_after_ping_timeout() -> None:
    aw = Anywire(anonymous=True, settings=Settings(ping_timeout=0.3, outbox_bytes=20_000))
    await aw.start()
    transport = WebSocketTransport(aw.host)
    issued = await issue(aw, "stuck")
    peer = FakePeer(issued.ticket)
    task = asyncio.create_task(transport(SCOPE, peer.receive, peer.send))
    try:
        await peer.wait_for(lambda: len(peer.sent) >= 2)  # accept + hello
        peer.gate = asyncio.Event()  # its socket buffer is full from now on: never set
        sess = aw.host.sessions[issued.sid]
        for _ in range(10):
            aw.host.push(sess, Outgoing("event", {"e": "n", "d": "x" * 5_000}))
        assert sess.last_close is not None and sess.last_close[0] == CloseCode.SLOW_CONSUMER
        # The close cannot go out (sends wait forever): the connection is cut, the
        # session detached and resumable.
        async with asyncio.timeout(3):
            await task
        assert sess.connection is None and aw.host.sessions.get(issued.sid) is sess
    finally:
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
        await aw.stop(grace=0.1)
