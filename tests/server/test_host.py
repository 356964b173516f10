"""The session host in-process: real core, real Link objects, no network."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from anywire.core.closecodes import CloseCode
from anywire.core.codec import Outgoing
from anywire.core.errors import ProtocolError
from anywire.core.frames import Connect, Event, Resume
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.longpoll import INFO as LONGPOLL
from anywire.transports.websocket import INFO as WEBSOCKET

from .helpers import issue


def _acks(aw: Anywire, link: Link) -> list[dict[str, Any]]:
    """The ack frames among what the writer of ``link`` would write now."""
    frames = map(link.codec.decode, aw.host.outgoing(link))
    return [f for f in frames if f["t"] == "ack"]


async def _attached(aw: Anywire, info: Any = WEBSOCKET) -> Link:
    _, _, ticket, _ = await issue(aw)
    link = Link(info, aw.host.codec("json"))
    await aw.host.attach(link, Connect(ticket))
    return link


async def _drained(aw: Anywire) -> Link:
    """An attached WebSocket link whose hello was already taken."""
    link = await _attached(aw)
    aw.host.outgoing(link)
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
        # What the writer then writes: the hello and the close, never a frame past the
        # gap (frames 1 and 2 are gone: the client would see seq 3 after hello seq 0).
        written = [link.codec.decode(f) for f in aw.host.outgoing(link)]
        assert [f["t"] for f in written] == ["hello", "close"], written
        assert written[1]["c"] == 4002
    finally:
        await aw.stop(grace=0.1)


async def test_a_connect_hook_that_overflows_the_outbox_gets_4002_not_a_gap() -> None:
    # Frames pushed before the hello (a connect hook) are not checked when pushed (there
    # is no connection yet): the writer must find the gap and close, not skip it or stall.
    aw = Anywire(anonymous=True, settings=Settings(outbox_size=10))

    @aw.on_connect
    async def flood(sock: Any) -> None:
        for i in range(12):
            await sock.emit("n", i)

    await aw.start()
    try:
        link = await _attached(aw)
        written = [link.codec.decode(f) for f in aw.host.outgoing(link)]
        assert [f["t"] for f in written] == ["hello", "close"], written
        assert written[1]["c"] == 4002
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
        token = aw.host.issuer.signer.sign({"k": "s", "sid": first.sid, "node": aw.node_id})
        sid, _, ticket, resumable = await issue(aw, resume=token)
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
        link = await _drained(aw)
        assert link.sid is not None
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


async def test_an_ack_no_codec_pair_can_carry_is_an_error_on_every_codec() -> None:
    """An ack is encoded for its connection's codec only (the echo hot path), so each
    codec must refuse what the other could not carry: 2^64 is valid JSON but beyond
    MessagePack's integers, and a JSON client is not sent it either (docs/protocol.md,
    5.1). The error ack keeps its id and is replayed as the same error on a resume over
    the other codec; the writer lives."""
    aw = Anywire(anonymous=True)

    @aw.on("big")
    def big(sock: Any, data: Any) -> int:
        return 2**64

    await aw.start()
    try:
        first = await _attached(aw)  # JSON
        assert first.sid is not None
        aw.host.outgoing(first)
        aw.host.feed(first.sid, [Event(s=1, e="big", id=7)])
        json_frames = [aw.host.codec("json").decode(f) for f in aw.host.outgoing(first)]
        (ack,) = [f for f in json_frames if f["t"] == "ack"]
        assert ack["ok"] is False and ack["err"]["code"] == "handler_error"
        aw.host.detach(first)  # written but never confirmed: replayed on resume

        token = aw.host.issuer.signer.sign({"k": "s", "sid": first.sid, "node": aw.node_id})
        _, _, ticket, resumable = await issue(aw, codec="msgpack", resume=token)
        assert resumable
        second = Link(WEBSOCKET, aw.host.codec("msgpack"))
        await aw.host.attach(second, Resume(ticket, 0))
        frames = [aw.host.codec("msgpack").decode(f) for f in aw.host.outgoing(second)]
        (replayed,) = [f for f in frames if f["t"] == "ack"]
        assert replayed["s"] == ack["s"] and replayed["id"] == 7
        assert replayed["ok"] is False and replayed["err"]["code"] == "handler_error"
        assert second.closing is None
    finally:
        await aw.stop(grace=0.1)


async def test_plain_handlers_answer_at_once_and_awaitables_they_return_are_awaited() -> None:
    aw = Anywire(anonymous=True)
    loop = asyncio.get_running_loop()
    later: asyncio.Future[str] = loop.create_future()

    @aw.on("now")
    def now(sock: Any, data: Any) -> Any:
        return {"got": data}

    @aw.on("later")
    def deferred(sock: Any, data: Any) -> Any:
        return later  # a plain function may hand back something to await

    await aw.start()
    try:
        link = await _drained(aw)
        assert link.sid is not None
        aw.host.feed(link.sid, [Event(s=1, e="now", d=[1, 2], id=1)])
        (ack,) = _acks(aw, link)
        assert ack == {"t": "ack", "s": 1, "id": 1, "ok": True, "d": {"got": [1, 2]}}

        aw.host.feed(link.sid, [Event(s=2, e="later", id=2)])
        assert not _acks(aw, link)
        later.set_result("done")
        async with asyncio.timeout(2):
            while not aw.host.has_pending(link):
                await link.wait()
        (ack,) = _acks(aw, link)
        assert ack["id"] == 2 and ack["d"] == "done"
    finally:
        await aw.stop(grace=0.1)


async def test_a_result_no_codec_can_carry_becomes_an_error_ack_and_the_writer_lives() -> None:
    aw = Anywire(anonymous=True)

    @aw.on("odd")
    def odd(sock: Any, data: Any) -> Any:
        return {"x": object()} if data == "bad" else data

    await aw.start()
    try:
        link = await _drained(aw)
        assert link.sid is not None
        aw.host.feed(link.sid, [Event(s=1, e="odd", d="bad", id=1)])
        aw.host.feed(link.sid, [Event(s=2, e="odd", d="fine", id=2)])
        acks = _acks(aw, link)
        assert [a["id"] for a in acks] == [1, 2]
        assert acks[0]["ok"] is False and acks[0]["err"]["code"] == "handler_error"
        assert "not sendable" in acks[0]["err"]["message"]
        assert acks[1] == {"t": "ack", "s": 2, "id": 2, "ok": True, "d": "fine"}
        assert link.closing is None
    finally:
        await aw.stop(grace=0.1)


async def test_a_handler_registered_again_is_called_the_way_its_new_kind_needs() -> None:
    """Registering an event again replaces the handler; a plain function that replaces
    an ``async def`` one (and the reverse) is called inline (or in a task) accordingly."""
    aw = Anywire(anonymous=True)

    @aw.on("x")
    async def first(sock: Any, data: Any) -> Any:
        return "async"

    @aw.on("x")
    def second(sock: Any, data: Any) -> Any:
        return "plain"

    @aw.on("y")
    def third(sock: Any, data: Any) -> Any:
        return "plain"

    @aw.on("y")
    async def fourth(sock: Any, data: Any) -> Any:
        return "async"

    await aw.start()
    try:
        link = await _drained(aw)
        assert link.sid is not None
        aw.host.feed(link.sid, [Event(s=1, e="x", id=1)])
        (ack,) = _acks(aw, link)  # answered inline: no task ran yet
        assert ack["d"] == "plain"
        aw.host.feed(link.sid, [Event(s=2, e="y", id=2)])
        assert not _acks(aw, link)  # the coroutine runs in a task
        async with asyncio.timeout(2):
            while not aw.host.has_pending(link):
                await link.wait()
        (ack,) = _acks(aw, link)
        assert ack["d"] == "async"
    finally:
        await aw.stop(grace=0.1)


async def test_a_quiet_member_leaves_without_a_leave_event_and_others_still_announce() -> None:
    # A member joined quietly (a broadcast-only room, Member.quiet) leaves quietly: when
    # its session ends nobody gets $leave; an ordinary member's end is still announced.
    from anywire.core.rooms import Member

    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        watcher, quiet, loud = [await _drained(aw) for _ in range(3)]
        host = aw.host
        for link, hush in ((watcher, False), (quiet, True), (loud, False)):
            assert link.sid is not None
            sess = host.sessions[link.sid]
            host.rooms.join("/", "r", Member(link.sid, sess.user, None, quiet=hush))

        def leaves() -> list[str]:
            frames = map(watcher.codec.decode, host.outgoing(watcher))
            return [f["d"]["sid"] for f in frames if f.get("e") == "$leave"]

        assert quiet.sid is not None and loud.sid is not None
        host.close_session(host.sessions[quiet.sid], 4500, "bye")
        assert leaves() == []
        host.close_session(host.sessions[loud.sid], 4500, "bye")
        assert leaves() == [loud.sid]
    finally:
        await aw.stop(grace=0.1)


class _SlowRedeem:
    """The host's issuer, whose redeem waits on ``opened`` first: a Redis round trip that
    is still out when the node's drain begins."""

    def __init__(self, real: Any, opened: asyncio.Event) -> None:
        self.real, self.opened = real, opened

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def redeem(self, ticket: str) -> Any:
        await self.opened.wait()
        return await self.real.redeem(ticket)


async def test_a_connection_that_arrives_during_the_drain_is_sent_on_never_ended() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    gate = asyncio.Event()
    try:
        first = await _drained(aw)
        assert first.sid is not None
        token = aw.host.issuer.signer.sign({"k": "s", "sid": first.sid, "node": aw.node_id})
        _, _, ticket, _ = await issue(aw, resume=token)
        aw.host.issuer = _SlowRedeem(aw.host.issuer, gate)
        second = Link(LONGPOLL, aw.host.codec("json"))
        attach = asyncio.create_task(aw.host.attach(second, Resume(ticket, 0)))
        drain = asyncio.create_task(aw.host.shutdown(budget=0.4))
        async with asyncio.timeout(2):
            while first.closing is None:  # the drain's close pass has run
                await asyncio.sleep(0.005)
        gate.set()
        with contextlib.suppress(ProtocolError):
            await attach
        await asyncio.wait_for(drain, 2)
        # Told to move (4000) or refused with it; a terminal 4500 would end the client.
        assert first.closing is not None and first.closing[0] == CloseCode.SHUTDOWN
        assert attach.exception() is None or attach.exception().code == CloseCode.SHUTDOWN
        assert second.closing is None or second.closing[0] == CloseCode.SHUTDOWN
    finally:
        gate.set()
        await aw.stop(grace=0.1)


async def test_a_session_forgotten_with_a_live_connection_sends_it_on_not_away() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        sock = await _attached(aw)
        assert sock.sid is not None
        aw.host.expire(aw.host.sessions[sock.sid])  # forgotten, its stream stays
        assert sock.closing is not None and sock.closing[0] == CloseCode.TRANSPORT_REPLACED
    finally:
        await aw.stop(grace=0.1)


def test_no_base_class_stub_shadows_a_real_method_of_the_host() -> None:
    """SessionHost is put together from base classes (Inbound, Budget, Delivery), each
    declaring what it needs of the others as stubs: the method a host finds must never be
    one of those stubs (the order of the bases decides it)."""
    import inspect

    from anywire.server.host import SessionHost

    stubs = []
    for name, member in inspect.getmembers(SessionHost, inspect.isfunction):
        body = inspect.getsource(member).rstrip().splitlines()[-1].strip()
        if body.startswith("raise NotImplementedError"):
            stubs.append(name)
    assert stubs == []


async def test_link_more_after_outgoing_is_what_has_pending_says() -> None:
    """Right after outgoing(), link.more is has_pending() (no close due): after the one
    new frame of a fan-out (take_next), after a run cut by the limit, after the rest."""
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        link = await _drained(aw)
        assert link.sid is not None
        sess = aw.host.sessions[link.sid]
        host = aw.host
        seen: list[int] = []

        def take(limit: int | None = None) -> None:
            frames = map(link.codec.decode, host.outgoing(link, limit))
            seen.extend(f["d"] for f in frames if f["t"] == "event")
            assert link.more == host.has_pending(link), (limit, seen)

        host.push(sess, Outgoing("event", {"e": "n", "d": 0}))
        take()  # the one new frame (take_next)
        assert seen == [0] and not link.more
        for i in range(1, 6):
            host.push(sess, Outgoing("event", {"e": "n", "d": i}))
        take(2)  # a run cut by the limit: more left
        assert seen == [0, 1, 2] and link.more
        take(2)
        assert link.more
        take()  # the rest
        assert seen == list(range(6)) and not link.more
        take()  # nothing
        assert not link.more
        host.push(sess, Outgoing("event", {"e": "n", "d": 6}))
        take(1)  # one new frame again
        assert seen == list(range(7)) and not link.more
    finally:
        await aw.stop(grace=0.1)
