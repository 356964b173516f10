"""The session host in-process: real core, real Link objects, no network."""

from __future__ import annotations

import asyncio
from typing import Any

from anywire.core.auth import Identity
from anywire.core.codec import Outgoing
from anywire.core.frames import Connect, Event, Resume
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.longpoll import INFO as LONGPOLL
from anywire.transports.websocket import INFO as WEBSOCKET


async def _attached(aw: Anywire, info: Any = WEBSOCKET) -> Link:
    _, _, ticket, _ = aw.host.issue(Identity("u1"), "/", "json", None)
    link = Link(info, aw.host.codec("json"))
    await aw.host.attach(link, Connect(ticket))
    return link


async def test_overflow_of_unwritten_frames_closes_a_slow_consumer() -> None:
    aw = Anywire(anonymous=True, settings=Settings(outbox_size=10))
    await aw.start()
    try:
        link = await _attached(aw)
        assert link.sid is not None
        sess = aw.host.sessions[link.sid]
        for i in range(11):  # never drained: the writer is stuck
            aw.host.push(sess, Outgoing("event", {"e": "n", "d": i}))
        assert link.closing is not None and link.closing[0] == 4002
    finally:
        await aw.stop(grace=0.1)


async def test_a_reader_that_keeps_up_is_never_cut_off() -> None:
    aw = Anywire(anonymous=True, settings=Settings(outbox_size=10))
    await aw.start()
    try:
        link = await _attached(aw)
        assert link.sid is not None
        sess = aw.host.sessions[link.sid]
        for i in range(100):
            aw.host.push(sess, Outgoing("event", {"e": "n", "d": i}))
            aw.host.outgoing(link)  # the writer drains...
        assert link.closing is None  # ...so only already-written frames were dropped
        assert not sess.can_resume(0)  # and resuming from the start is honestly impossible
    finally:
        await aw.stop(grace=0.1)


async def test_replaced_connection_is_told_and_new_one_gets_the_replay() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        first = await _attached(aw)
        assert first.sid is not None
        sess = aw.host.sessions[first.sid]
        aw.host.outgoing(first)
        aw.host.push(sess, Outgoing("event", {"e": "n", "d": 1}))
        token = aw.host.signer.sign({"k": "s", "sid": first.sid, "node": aw.node_id})
        sid, _, ticket, resumable = aw.host.issue(Identity("u1"), "/", "json", token)
        assert resumable and sid == first.sid
        second = Link(LONGPOLL, aw.host.codec("json"))
        await aw.host.attach(second, Resume(ticket, 0))
        assert first.closing is not None and first.closing[0] == 4005
        frames = [aw.host.codec("json").decode(f) for f in aw.host.outgoing(second)]
        assert frames[0]["t"] == "hello" and frames[0]["recovered"] is True
        assert frames[1]["e"] == "n" and frames[1]["s"] == 1
    finally:
        await aw.stop(grace=0.1)


async def test_handler_exception_becomes_error_ack_and_session_lives() -> None:
    aw = Anywire(anonymous=True)

    @aw.on("boom")
    async def boom(sock: Any, data: Any) -> None:
        raise RuntimeError("kaput")

    await aw.start()
    try:
        link = await _attached(aw)
        assert link.sid is not None
        aw.host.outgoing(link)
        aw.host.feed(link.sid, [Event(s=1, e="boom", id=5)])
        async with asyncio.timeout(2):
            while not aw.host.has_pending(link):
                await link.wait()
        frames = [aw.host.codec("json").decode(f) for f in aw.host.outgoing(link)]
        (ack,) = [f for f in frames if f["t"] == "ack"]
        assert {"t": "rx", "n": 1} in frames  # the client's frame is acknowledged alongside
        assert ack["ok"] is False and ack["err"] == {"code": "handler_error", "message": "kaput"}
        assert link.closing is None and link.sid in aw.host.sessions
    finally:
        await aw.stop(grace=0.1)
