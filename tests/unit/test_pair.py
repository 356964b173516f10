"""A ClientPeer and a ServerSession talking over a simulated connection (in the spirit of
h11's ConnectionPair): every frame really goes through a codec, connections drop with
frames in flight both ways, and after each resume nothing is lost, duplicated or
reordered."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest

from anywire.core.closecodes import should_reconnect
from anywire.core.codec import Outgoing
from anywire.core.frames import Event, Frame, Hello, Ping, Resume, parse_frame
from anywire.core.peer import ClientPeer
from anywire.core.session import Heartbeat, ServerSession, SessionState
from anywire.core.settings import Settings
from tests.unit.conftest import make_codec

HEARTBEAT = Heartbeat(ping_interval=20.0, dead_after=30.0)


class Pair:
    """The client and server state machines plus the bytes in flight between them."""

    def __init__(self, codec_name: str, settings: Settings, batch: bool = False) -> None:
        self.codec = make_codec(codec_name)
        self.settings = settings
        self.batch = batch
        self.now = 0.0
        self.server = ServerSession("sid", "user", "/", settings, self.now)
        self.peer = ClientPeer()
        self.conn: object | None = None  # server side of the live connection
        self.client_live = False  # the client has seen the hello of the live connection
        self.c2s: deque[bytes] = deque()
        self.s2c: deque[bytes] = deque()
        self.server_got: list[Any] = []
        self.client_got: list[Any] = []
        self.client_sent = 0
        self.server_pushed = 0
        self.lost = 0
        self.connects = 0
        self.fresh_sessions = 0

    # -- wire --------------------------------------------------------------------------
    def _decode(self, data: bytes) -> list[Frame]:
        obj = self.codec.decode(data)
        return [parse_frame(item) for item in (obj if isinstance(obj, list) else [obj])]

    def _send_c2s(self, frame: Frame) -> None:
        self.c2s.append(self.codec.encode(frame.to_wire()))

    # -- connection lifecycle ------------------------------------------------------------
    def connect(self) -> None:
        assert self.conn is None
        conn = object()
        if self.server.state is SessionState.NEW:
            hello = self.server.attach(conn, self.now, HEARTBEAT, None)
        else:
            # The client's first frame, through the codec like everything else.
            [resume] = self._decode(self.codec.encode(Resume("tk", self.peer.in_last).to_wire()))
            assert isinstance(resume, Resume)
            if self.server.can_resume(resume.last):
                hello = self.server.attach(conn, self.now, HEARTBEAT, resume.last)
            else:
                # What the host does: a fresh session under the same sid.
                self.server.close()
                self.server = ServerSession("sid", "user", "/", self.settings, self.now)
                hello = self.server.attach(conn, self.now, HEARTBEAT, None)
                self.fresh_sessions += 1
        self.conn = conn
        self.connects += 1
        self.s2c.append(self.codec.encode(hello.to_wire()))
        self.server_write()

    def drop(self) -> None:
        """The connection dies: every byte in flight, either way, is lost."""
        self.lost += len(self.c2s) + len(self.s2c)
        self.c2s.clear()
        self.s2c.clear()
        assert self.server.detach(self.conn, self.now)
        self.conn = None
        self.client_live = False

    # -- server --------------------------------------------------------------------------
    def server_push(self) -> None:
        self.server.push(Outgoing("event", {"e": "srv", "d": self.server_pushed}))
        self.server_pushed += 1
        self.server_write()

    def server_write(self) -> None:
        if self.conn is None:
            return
        codec = self.codec
        out = [codec.encode(f.to_wire()) for f in self.server.take_control()]
        out += [codec.frame(o.type, s, o.body(codec)) for s, o in self.server.take_pending()]
        if self.batch and len(out) > 1:
            self.s2c.append(codec.batch(out))
        else:
            self.s2c.extend(out)

    def server_read(self, count: int) -> None:
        for _ in range(min(count, len(self.c2s))):
            for frame in self._decode(self.c2s.popleft()):
                handled = self.server.receive(frame, self.now)
                if isinstance(handled, Event):
                    self.server_got.append(handled.d)
        self.server_write()

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for action in self.server.poll(self.now):
            if action.kind == "ping":
                self.server_write()
            elif action.kind == "close":
                assert should_reconnect(action.code)
                self.drop()
            else:
                raise AssertionError(f"unexpected {action}")

    # -- client --------------------------------------------------------------------------
    def client_send(self) -> None:
        ev = self.peer.event("cli", self.client_sent)
        self.client_sent += 1
        if self.client_live:
            self._send_c2s(ev)
        # Otherwise it waits in peer.unconfirmed and on_hello hands it back.

    def client_read(self, count: int) -> None:
        for _ in range(min(count, len(self.s2c))):
            for frame in self._decode(self.s2c.popleft()):
                if isinstance(frame, Hello):
                    for resend in self.peer.on_hello(frame):
                        self._send_c2s(resend)
                    self.client_live = True
                    continue
                handled = self.peer.receive(frame)
                if isinstance(handled, Event):
                    self.client_got.append(handled.d)
                elif isinstance(handled, Ping):
                    self._send_c2s(self.peer.pong())
                    rx = self.peer.rx_due(force=True)
                    if rx is not None:
                        self._send_c2s(rx)
                rx = self.peer.rx_due()
                if rx is not None:
                    self._send_c2s(rx)

    # -- checks --------------------------------------------------------------------------
    def settle(self) -> None:
        """Reconnect if needed and exchange everything, acknowledgements included."""
        if self.conn is None:
            self.connect()
        for _ in range(3):
            while self.c2s or self.s2c:
                self.client_read(len(self.s2c))
                self.server_read(len(self.c2s))
            rx = self.peer.rx_due(force=True)
            if rx is not None:
                self._send_c2s(rx)
            self.tick(HEARTBEAT.ping_interval or 0.0)  # a ping carries the server's rx

    def assert_exactly_once_in_order(self) -> None:
        assert self.server_got == list(range(self.client_sent))
        assert self.client_got == list(range(self.server_pushed))
        # Both retransmission buffers drained: everything was acknowledged.
        assert not self.peer.unconfirmed
        assert not self.server.outbox


def run_random(pair: Pair, rng: random.Random, steps: int) -> None:
    pair.connect()
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.25:
            pair.client_send()
        elif roll < 0.50:
            pair.server_push()
        elif roll < 0.65:
            pair.client_read(rng.randint(1, 4))
        elif roll < 0.80:
            pair.server_read(rng.randint(1, 4))
        elif roll < 0.88:
            pair.tick(rng.choice([0.5, 3.0, 12.0]))
        elif pair.conn is not None:
            if roll < 0.93:
                pair.drop()
        else:
            pair.connect()


@pytest.mark.parametrize("codec_name", ["json", "msgpack"])
@pytest.mark.parametrize("batch", [False, True], ids=["single", "batched"])
@pytest.mark.parametrize("seed", range(12))
def test_random_drops_lose_and_duplicate_nothing(codec_name: str, batch: bool, seed: int) -> None:
    pair = Pair(codec_name, Settings(resume_window=1e9), batch=batch)
    run_random(pair, random.Random(seed), steps=600)
    pair.settle()
    pair.assert_exactly_once_in_order()
    # The scenario really did lose frames in flight and resume.
    assert pair.lost > 0 and pair.connects > 2
    assert pair.client_sent > 50 and pair.server_pushed > 50
    assert pair.fresh_sessions == 0


def test_frames_in_flight_both_ways_survive_a_drop() -> None:
    pair = Pair("json", Settings())
    pair.connect()
    pair.client_read(1)  # hello
    for _ in range(5):
        pair.server_push()
    for _ in range(3):
        pair.client_send()
    pair.client_read(2)  # server frames 0, 1 arrive; 2-4 are in flight
    pair.server_read(1)  # client frame 0 arrives; 1-2 are in flight
    in_flight_down = [f for m in pair.s2c for f in pair._decode(m) if isinstance(f, Event)]
    in_flight_up = [f for m in pair.c2s for f in pair._decode(m) if isinstance(f, Event)]
    assert [f.d for f in in_flight_down] == [2, 3, 4]
    assert [f.d for f in in_flight_up] == [1, 2]
    pair.drop()
    assert pair.client_got == [0, 1] and pair.server_got == [0]
    pair.client_send()  # while disconnected
    pair.server_push()
    pair.connect()
    pair.client_read(len(pair.s2c))
    pair.server_read(len(pair.c2s))
    assert pair.client_got == [0, 1, 2, 3, 4, 5]
    assert pair.server_got == [0, 1, 2, 3]


def test_lost_acknowledgements_cause_no_duplicates() -> None:
    """The server processed frames whose rx never arrived (and vice versa): the hello and
    the resume point settle it without redelivery."""
    pair = Pair("msgpack", Settings())
    pair.connect()
    pair.client_read(1)
    for _ in range(20):
        pair.client_send()
        pair.server_push()
    pair.server_read(len(pair.c2s))  # all 20 processed; the rx(16) it sent is in flight
    pair.client_read(len(pair.s2c) - 1)  # the rx is lost with the last message
    assert pair.peer.rx_due(force=True) is not None  # the client's rx is never sent
    pair.drop()
    assert len(pair.peer.unconfirmed) == 20  # no confirmation reached the client
    pair.connect()
    pair.settle()
    pair.assert_exactly_once_in_order()


def test_unrecoverable_resume_restarts_numbering_under_the_same_sid() -> None:
    """The outbox overflowed while the client was away: the resume is refused, the host
    starts a new session with the same sid, and the client's pending frames still get
    through (renumbered) instead of tripping the gap check forever."""
    pair = Pair("json", Settings(outbox_size=4))
    pair.connect()
    pair.client_read(1)
    for _ in range(3):
        pair.client_send()
    pair.server_read(3)
    pair.tick(20.0)  # the ping carries rx 3
    pair.client_read(len(pair.s2c))
    assert not pair.peer.unconfirmed
    pair.drop()
    for _ in range(10):
        pair.server_push()  # overflows the outbox of 4
    pair.client_send()
    pair.client_send()
    pair.connect()
    assert pair.fresh_sessions == 1
    pair.client_read(1)  # hello: recovered false, same sid
    assert pair.peer.sid == "sid" and pair.peer.in_last == 0
    pair.server_read(len(pair.c2s))
    assert pair.server_got == [0, 1, 2, 3, 4]
    pair.client_send()
    pair.server_push()
    pair.settle()
    assert pair.server_got == [0, 1, 2, 3, 4, 5]
    assert pair.client_got == [10]  # frames of the lost session are gone, later ones flow
