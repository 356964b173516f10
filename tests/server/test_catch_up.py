"""Catch-up from stream history, in-process: a session that starts consuming a stream (a
join, a fresh session's own streams) gets what history holds after the client's position,
then live events, every offset once and in order, or a ``$lost`` naming what is gone.
Real host and memory broker, plus a scripted broker whose history read can be held open
while live events arrive."""

from __future__ import annotations

import asyncio
from typing import Any

from anywire.core.frames import Ack, Connect, Join
from anywire.core.settings import Settings
from anywire.core.streams import StreamRead
from anywire.server.app import Anywire
from anywire.server.broker_memory import MemoryBroker
from anywire.server.socket import Socket
from anywire.transports.base import Link
from anywire.transports.websocket import INFO as WEBSOCKET

from .helpers import frames as _frames
from .helpers import issue

ROOM = "room:/:r"


async def _connect(aw: Anywire, since: dict[str, tuple[str, int]] | None = None) -> Link:
    issued = await issue(aw, since=since)
    link = Link(WEBSOCKET, aw.host.codec("json"))
    await aw.host.attach(link, Connect(issued.ticket))
    return link



def _events(frames: list[dict[str, Any]], name: str | None = None) -> list[dict[str, Any]]:
    return [f for f in frames if f["t"] == "event" and (name is None or f["e"] == name)]


async def _settle(aw: Anywire, link: Link, count: int) -> list[dict[str, Any]]:
    """Frames from ``link`` until ``count`` events have come (bounded)."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while len(_events(got)) < count:
            got += _frames(aw, link)
            if len(_events(got)) < count:
                await link.wait(0.05)
    return got


class HeldBroker(MemoryBroker):
    """A memory broker whose history reads wait for ``gate`` (a slow Redis), so a test
    can publish live events while a catch-up is reading."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()

    async def read(self, stream: str, epoch: str, after: int) -> StreamRead:
        read = await super().read(stream, epoch, after)  # what history held then
        self.reading.set()
        await self.gate.wait()
        return read


async def test_live_events_during_a_slow_history_read_follow_the_replay_once_each() -> None:
    broker = HeldBroker()
    broker.gate.set()
    aw = Anywire(anonymous=True, broker=broker)
    await aw.start()
    try:
        for i in range(1, 4):
            await aw.emit("e", i, room="r")
        link = await _connect(aw)
        assert link.sid is not None
        _frames(aw, link)
        broker.gate.clear()
        epoch = (broker.position(ROOM) or ("", 0))[0]
        aw.host.feed(link.sid, [Join(s=1, id=1, r="r", since=(epoch, 1))])
        async with asyncio.timeout(5):
            await broker.reading.wait()
        for i in range(4, 7):  # published while the read is stuck: held, not lost
            await aw.emit("e", i, room="r")
        broker.gate.set()
        frames = await _settle(aw, link, 5)
        (answer,) = [f for f in frames if f["t"] == "ack"]
        assert answer["d"]["recovered"] is True
        assert [f["o"][2] for f in _events(frames)] == [2, 3, 4, 5, 6]
        assert frames.index(answer) < frames.index(_events(frames)[0])  # answer first
    finally:
        await aw.stop(grace=0.1)


async def test_a_repeated_join_with_the_same_since_replays_nothing_twice() -> None:
    """Issue #12, failure 1: a rejoin resent from a lost session next to the client's
    own new one (same ``since``) must not replay the history twice."""
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        for i in range(1, 6):
            await aw.emit("e", i, room="r")
        epoch = (aw.broker.position(ROOM) or ("", 0))[0]
        link = await _connect(aw)
        assert link.sid is not None
        _frames(aw, link)
        aw.host.feed(link.sid, [Join(s=1, id=1, r="r", since=(epoch, 2))])
        aw.host.feed(link.sid, [Join(s=2, id=2, r="r", since=(epoch, 2))])
        frames = await _settle(aw, link, 3)
        await asyncio.sleep(0)
        frames += _frames(aw, link)
        acks = [f for f in frames if f["t"] == "ack"]
        assert [a["d"]["recovered"] for a in acks] == [True, True]
        assert [a["d"]["position"] for a in acks] == [[epoch, 2], [epoch, 5]]
        assert [f["o"][2] for f in _events(frames)] == [3, 4, 5]
    finally:
        await aw.stop(grace=0.1)


async def test_trimmed_history_is_announced_and_what_remains_is_replayed() -> None:
    aw = Anywire(anonymous=True, settings=Settings(stream_history=3))
    await aw.start()
    try:
        for i in range(1, 8):
            await aw.emit("e", i, room="r")
        epoch = (aw.broker.position(ROOM) or ("", 0))[0]
        link = await _connect(aw)
        assert link.sid is not None
        _frames(aw, link)
        aw.host.feed(link.sid, [Join(s=1, id=1, r="r", since=(epoch, 1))])
        frames = await _settle(aw, link, 4)
        (answer,) = [f for f in frames if f["t"] == "ack"]
        assert answer["d"]["recovered"] is False and answer["d"]["position"] == [epoch, 1]
        (lost,) = _events(frames, "$lost")
        assert lost["d"] == {"stream": ROOM, "epoch": epoch, "from": 2, "to": 4, "room": "r"}
        assert lost["r"] == "r"
        assert [f["o"][2] for f in _events(frames, "e")] == [5, 6, 7]
    finally:
        await aw.stop(grace=0.1)


async def test_a_join_without_since_is_told_where_it_starts() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        for i in range(1, 4):
            await aw.emit("e", i, room="r")
        epoch = (aw.broker.position(ROOM) or ("", 0))[0]
        link = await _connect(aw)
        assert link.sid is not None
        _frames(aw, link)
        aw.host.feed(link.sid, [Join(s=1, id=1, r="r")])
        frames = await _settle(aw, link, 0)
        async with asyncio.timeout(5):
            while not [f for f in frames if f["t"] == "ack"]:
                await link.wait(0.05)
                frames += _frames(aw, link)
        (answer,) = [f for f in frames if f["t"] == "ack"]
        assert answer["d"]["position"] == [epoch, 3] and "recovered" not in answer["d"]
        assert _events(frames) == []
        # A room nobody published to yet gets a position too: offsets can be named.
        aw.host.feed(link.sid, [Join(s=2, id=2, r="quiet")])
        async with asyncio.timeout(5):
            while not (acks := [f for f in _frames(aw, link) if f["t"] == "ack"]):
                await link.wait(0.05)
        assert acks[0]["d"]["position"][1] == 0 and acks[0]["d"]["position"][0]
    finally:
        await aw.stop(grace=0.1)


async def test_a_fresh_session_lists_its_streams_and_catches_up_on_them() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        first = await _connect(aw)
        hello = _frames(aw, first)[0]
        streams = {s[0].split(":")[0]: s for s in hello["streams"]}
        assert set(streams) == {"user", "sess", "all"}
        user = streams["user"][0]
        assert user == f"user:/:{aw.host.sessions[first.sid or ''].user}"
        for i in range(1, 4):
            await aw.emit("dm", i, user=user.split(":", 2)[2])
        epoch = (aw.broker.position(user) or ("", 0))[0]
        # Another client of the same user, holding offset 1: offsets 2 and 3 are replayed.
        link = await _connect(aw, since={user: (epoch, 1)})
        frames = await _settle(aw, link, 2)  # the catch-up follows the hello
        assert [(f["d"], f["o"][2]) for f in _events(frames)] == [(2, 2), (3, 3)]
        hello = frames[0]
        assert [s for s in hello["streams"] if s[0] == user] == [[user, epoch, 1]]
    finally:
        await aw.stop(grace=0.1)


async def test_a_position_from_another_epoch_is_lost_and_the_current_one_replayed() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        first = await _connect(aw)
        user = _frames(aw, first)[0]["streams"][0][0]
        await aw.emit("dm", "new", user=user.split(":", 2)[2])
        link = await _connect(aw, since={user: ("gone", 7)})
        events = _events(await _settle(aw, link, 2))
        assert events[0]["e"] == "$lost"
        assert events[0]["d"] == {"stream": user, "epoch": "gone", "from": 8, "to": None}
        assert [(f["e"], f["d"]) for f in events[1:]] == [("dm", "new")]
    finally:
        await aw.stop(grace=0.1)


async def test_a_server_side_join_catches_up_from_the_position_the_client_reported() -> None:
    aw = Anywire(anonymous=True)

    @aw.on_connect
    async def lobby(sock: Socket) -> None:
        await sock.join("r")

    await aw.start()
    try:
        for i in range(1, 5):
            await aw.emit("e", i, room="r")
        epoch = (aw.broker.position(ROOM) or ("", 0))[0]
        link = await _connect(aw, since={ROOM: (epoch, 2)})
        assert [f["o"][2] for f in _events(await _settle(aw, link, 2), "e")] == [3, 4]
        link = await _connect(aw)  # a client without a position starts from now
        assert _events(_frames(aw, link), "e") == []
    finally:
        await aw.stop(grace=0.1)


async def test_events_to_a_session_are_a_stream_that_a_fresh_session_continues() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        link = await _connect(aw)
        sid = link.sid or ""
        hello = _frames(aw, link)[0]
        (own,) = [s for s in hello["streams"] if s[0] == f"sess:/:{sid}"]
        for i in range(1, 4):
            await aw.emit("note", i, to=sid)
        notes = _events(_frames(aw, link), "note")
        assert [f["o"] for f in notes] == [[own[0], own[1], i] for i in (1, 2, 3)]
        # The client saw offset 1 only; its next session (same sid) replays 2 and 3.
        token = aw.host.issuer.signer.sign(
            {"k": "s", "sid": sid, "node": "gone", "ns": "/", "u": aw.host.sessions[sid].user,
             "a": True}
        )  # fmt: skip
        aw.host._expire(aw.host.sessions[sid], run_hooks=False, end="moved")
        issued = await issue(aw, resume=token, since={own[0]: (own[1], 1)})
        assert issued.sid == sid and issued.resumable is False
        again = Link(WEBSOCKET, aw.host.codec("json"))
        await aw.host.attach(again, Connect(issued.ticket))
        frames = await _settle(aw, again, 2)
        assert frames[0]["recovered"] is False and frames[0]["sid"] == sid
        assert [f["d"] for f in _events(frames, "note")] == [2, 3]
    finally:
        await aw.stop(grace=0.1)


async def test_the_stream_of_a_session_that_is_not_continued_is_announced_lost() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        link = await _connect(aw, since={"sess:/:an-old-sid": ("ep", 4)})
        (lost,) = _events(_frames(aw, link), "$lost")
        assert lost["d"] == {"stream": "sess:/:an-old-sid", "epoch": "ep", "from": 5, "to": None}
    finally:
        await aw.stop(grace=0.1)


async def test_a_server_call_is_answered_by_the_ack_of_its_offset() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        link = await _connect(aw)
        sid = link.sid or ""
        _frames(aw, link)
        await aw.emit("before", None, to=sid)  # offset 1 of the session's stream
        call = asyncio.ensure_future(aw.call(sid, "ask", "q", timeout=5))
        frames = await _settle(aw, link, 2)
        (asked,) = _events(frames, "ask")
        assert asked["id"] == asked["o"][2] == 2
        aw.host.feed(sid, [Ack(s=1, id=asked["id"], ok=True, d="a")])
        assert await call == "a"
        assert len(aw.host.calls) == 0
    finally:
        await aw.stop(grace=0.1)


async def test_an_ack_resent_while_the_fresh_session_catches_up_still_answers_its_call() -> None:
    # Regression: the fresh session's catch-up runs after its hello; an ack the client
    # resent at once (it answered the call in the lost session) found no position in the
    # session's stream yet and was dropped, and the caller timed out.
    broker = HeldBroker()
    broker.gate.set()
    aw = Anywire(anonymous=True, broker=broker)
    await aw.start()
    try:
        link = await _connect(aw)
        sid = link.sid or ""
        hello = _frames(aw, link)[0]
        call = asyncio.ensure_future(aw.call(sid, "ask", "q", timeout=5))
        (asked,) = _events(await _settle(aw, link, 1), "ask")
        # The session is lost before the client's answer reached it.
        token = aw.host.issuer.signer.sign(
            {"k": "s", "sid": sid, "node": "gone", "ns": "/", "u": aw.host.sessions[sid].user,
             "a": True}
        )  # fmt: skip
        aw.host._expire(aw.host.sessions[sid], run_hooks=False, end="moved")
        since = {s: (e, o) for s, e, o in hello["streams"]}
        since[asked["o"][0]] = (asked["o"][1], asked["o"][2])  # the client holds the call
        issued = await issue(aw, resume=token, since=since)
        broker.gate.clear()  # history is slow: the catch-up is still reading
        broker.reading.clear()
        again = Link(WEBSOCKET, aw.host.codec("json"))
        await aw.host.attach(again, Connect(issued.ticket))
        assert _frames(aw, again)[0]["recovered"] is False
        await asyncio.wait_for(broker.reading.wait(), 5)
        # The client resends its unconfirmed answer first thing in the new session.
        aw.host.feed(sid, [Ack(s=1, id=asked["id"], ok=True, d="a")])
        broker.gate.set()
        assert await asyncio.wait_for(call, 5) == "a"
    finally:
        await aw.stop(grace=0.1)
