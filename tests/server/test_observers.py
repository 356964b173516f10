"""The observer calls of the session host, in-process (real host, real Links): a
recording listener hears connects, resumes, ends with their frames, slow-consumer
closes, $lost ranges, flood refusals and ack round trips."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from anywire.core.closecodes import CloseCode
from anywire.core.codec import Outgoing
from anywire.core.errors import RemoteProtocolError
from anywire.core.frames import Ack, Connect, Event, Resume
from anywire.core.settings import Settings
from anywire.core.streams import Lost
from anywire.server.app import Anywire
from anywire.server.observe import Connection, Observer
from anywire.server.tracking import LATENCY_SAMPLE
from anywire.transports.base import Link
from anywire.transports.longpoll import INFO as LONGPOLL
from anywire.transports.traffic import Traffic
from anywire.transports.websocket import INFO as WEBSOCKET

from .helpers import issue


class Recorder(Observer):
    """Every event, in order, as (name, *args)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def connected(self, conn: Connection, resumed: bool) -> None:
        self.events.append(("connected", conn, resumed))

    def disconnected(
        self, conn: Connection, code: int, duration: float, frames_in: int, frames_out: int
    ) -> None:
        self.events.append(("disconnected", conn.transport, code, frames_in, frames_out))

    def resumed(self, outcome: str) -> None:
        self.events.append(("resumed", outcome))

    def lost(self, stream: str, count: int | None) -> None:
        self.events.append(("lost", stream, count))

    def closed_for(self, reason: str, conn: Connection) -> None:
        self.events.append(("closed_for", reason, conn.transport))

    def ack_round_trip(self, seconds: float) -> None:
        self.events.append(("ack_round_trip", seconds))

    def ack_timeout(self) -> None:
        self.events.append(("ack_timeout",))

    def delivery_latency(self, seconds: float) -> None:
        self.events.append(("delivery_latency", seconds))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == name]


async def _app(**settings: Any) -> tuple[Anywire, Recorder]:
    aw = Anywire(anonymous=True, settings=Settings(**settings))
    rec = Recorder()
    aw.observe(rec)
    await aw.start()
    return aw, rec


async def _attached(aw: Anywire, info: Any = WEBSOCKET) -> Link:
    ticket = (await issue(aw)).ticket
    link = Link(info, aw.host.codec("json"), Traffic(), ("http://o.example", "10.0.0.1"))
    await aw.host.attach(link, Connect(ticket))
    return link


async def test_a_connection_is_told_with_who_and_its_end_with_code_and_frames() -> None:
    aw, rec = await _app()
    try:
        link = await _attached(aw)
        assert link.sid is not None
        ((_, conn, resumed),) = rec.named("connected")
        assert (conn.sid, conn.transport, conn.namespace) == (link.sid, "websocket", "/")
        assert (conn.origin, conn.ip, resumed) == ("http://o.example", "10.0.0.1", False)
        aw.host.outgoing(link)
        aw.host.feed(link.sid, [Event(s=1, e="nobody", d=1), Event(s=2, e="nobody", d=2)])
        aw.host.push(aw.host.sessions[link.sid], Outgoing("event", {"e": "n", "d": 1}))
        aw.host.outgoing(link)
        link.close(CloseCode.NORMAL, "bye")
        aw.host.detach(link)
        aw.host.detach(link)  # told once
        assert rec.named("disconnected") == [("disconnected", "websocket", CloseCode.NORMAL, 2, 1)]
        assert link.traffic.frames_in == 2 and link.traffic.frames_out >= 2
    finally:
        await aw.stop(grace=0.1)


async def test_a_resume_is_told_as_recovered_and_the_replaced_link_ends() -> None:
    aw, rec = await _app()
    try:
        issued = await issue(aw)
        old = Link(LONGPOLL, aw.host.codec("json"))
        await aw.host.attach(old, Connect(issued.ticket))
        again = await issue(aw, resume=issued.token)
        new = Link(WEBSOCKET, aw.host.codec("json"))
        await aw.host.attach(new, Resume(again.ticket, 0))
        assert rec.named("resumed") == [("resumed", "recovered")]
        assert [e[2] for e in rec.named("connected")] == [False, True]
        # The replaced long-poll link will see no further request: it ends now.
        assert rec.named("disconnected") == [("disconnected", "longpoll", 4005, 0, 0)]
    finally:
        await aw.stop(grace=0.1)


async def test_a_slow_consumer_close_and_a_lost_range_are_told() -> None:
    aw, rec = await _app(outbox_size=5)
    try:
        link = await _attached(aw, LONGPOLL)
        assert link.sid is not None
        sess = aw.host.sessions[link.sid]
        aw.host.track.lost(sess, Lost("room:/:r", "ep", 3, 7))
        assert rec.named("lost") == [("lost", "room:/:r", 5)]
        for i in range(10):
            aw.host.push(sess, Outgoing("event", {"e": "n", "d": i}))
        assert rec.named("closed_for") == [("closed_for", "slow_consumer", "longpoll")]
    finally:
        await aw.stop(grace=0.1)


async def test_a_flood_refusal_is_counted_on_its_transport() -> None:
    aw, _ = await _app(flood_rate=1, flood_burst=2)
    try:
        link = await _attached(aw)
        assert link.sid is not None
        with pytest.raises(RemoteProtocolError):
            for s in range(1, 10):
                aw.host.feed(link.sid, [Event(s=s, e="nobody", d=s)])
        assert link.traffic.flood_refusals == 1
    finally:
        await aw.stop(grace=0.1)


async def test_calls_report_round_trips_and_timeouts_and_deliveries_are_sampled() -> None:
    aw, rec = await _app()
    try:
        link = await _attached(aw)
        assert link.sid is not None
        aw.host.outgoing(link)
        call = asyncio.ensure_future(aw.call(link.sid, "q", 1, timeout=5))
        ack_id = None
        while ack_id is None:
            await link.wait(1)
            for raw in aw.host.outgoing(link):
                frame = link.codec.decode(raw)
                if isinstance(frame, dict) and frame.get("e") == "q":
                    ack_id = frame["id"]
        aw.host.feed(link.sid, [Ack(s=1, id=ack_id, ok=True, d="yes")])
        assert await call == "yes"
        with pytest.raises(Exception, match="no ack"):
            await aw.call(link.sid, "q", 1, timeout=0.05)
        assert len(rec.named("ack_round_trip")) == 1 and rec.named("ack_timeout")
        for i in range(LATENCY_SAMPLE):
            await aw.emit("n", i)
        (latency,) = rec.named("delivery_latency")
        assert 0 <= latency[1] < 1
    finally:
        await aw.stop(grace=0.1)
