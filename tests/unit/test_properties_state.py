"""Property tests of the two state machines (issue #13, "Fuzzing"): any sequence of
frames and host calls into a ServerSession, and of frames into a ClientPeer, leaves a
valid state or ends in a documented protocol error (RemoteProtocolError), never another
exception or a broken invariant. The host's side is played as the host plays it (it
checks can_resume() before a resume, say); the client's side is anything at all.
Profiles: tests/unit/conftest.py."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from anywire.core.codec import Outgoing
from anywire.core.errors import RemoteProtocolError
from anywire.core.frames import (
    Ack,
    Auth,
    Close,
    Connect,
    ErrorFrame,
    Event,
    Frame,
    Hello,
    Join,
    Leave,
    Ping,
    Pong,
    Resume,
    Rx,
)
from anywire.core.peer import ClientPeer
from anywire.core.session import Heartbeat, ServerSession, SessionState
from anywire.core.settings import Settings

SETTINGS = Settings(outbox_size=8, flood_burst=30, flood_rate=50.0, resume_window=5.0)
HEARTBEAT = Heartbeat(ping_interval=1.0, dead_after=3.0)

small = st.integers(0, 12)
names = st.sampled_from(["a", "b", "$x"])
data = st.none() | st.integers(-5, 5) | st.text(max_size=3)


def _frames(seq: st.SearchStrategy[int]) -> st.SearchStrategy[Frame]:
    """Any frame a peer could send, with sequence numbers from ``seq``."""
    return st.one_of(
        st.builds(Event, s=seq, e=names, d=data, id=st.none() | small),
        st.builds(Ack, s=seq, id=small, ok=st.booleans(), d=data),
        st.builds(Join, s=seq, id=small, r=names, meta=data),
        st.builds(Leave, s=seq, id=small, r=names),
        st.builds(Rx, n=small),
        st.just(Ping()),
        st.just(Pong()),
        st.builds(Close, c=st.sampled_from([1000, 4502]), m=st.text(max_size=3)),
        st.builds(Connect, ticket=st.just("t")),
        st.builds(Resume, ticket=st.just("t"), last=small),
        st.builds(Hello, sid=st.just("s"), recovered=st.booleans(), seq=small, last=small),
        st.builds(ErrorFrame, c=st.just(4502), m=st.just("x")),
        st.builds(Auth, id=small, token=st.just("jwt")),
    )


class SessionMachine(RuleBasedStateMachine):
    """A ServerSession fed any client frames, driven by a host that keeps the rules."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.sess = ServerSession("sid", "user", "/", SETTINGS, self.now)
        self.conn: object | None = None

    def _alive(self) -> bool:
        return self.sess.state is not SessionState.CLOSED

    def _push(self, out: Outgoing) -> None:
        """What the host does (SessionHost.push): an overflow past frames the connection
        was not even given closes it (4002, slow consumer; the session stays)."""
        overflow = self.sess.push(out) and self.sess.written < self.sess.floor - 1
        if overflow and self.conn is not None:
            self.sess.detach(self.conn, self.now)
            self.conn = None

    @rule(dt=st.floats(0, 2))
    def tick(self, dt: float) -> None:
        self.now += dt
        for action in self.sess.poll(self.now):
            if action.kind == "expire":
                self.sess.close()
            elif action.kind == "close" and self.conn is not None:
                self.sess.detach(self.conn, self.now)
                self.conn = None

    @precondition(lambda self: self._alive())
    @rule(frame=_frames(small))
    def receive(self, frame: Frame) -> None:
        # Documented: the host answers it (an error frame, or a close).
        with contextlib.suppress(RemoteProtocolError):
            self.sess.receive(frame, self.now)

    @precondition(lambda self: self._alive())
    @rule(frame=_frames(small))
    def receive_next(self, frame: Frame) -> None:
        """Mostly well-numbered traffic, so deep states are reached."""
        if hasattr(frame, "s"):
            frame = type(frame)(**{**{k: getattr(frame, k) for k in frame.__slots__},  # type: ignore[attr-defined]
                                   "s": self.sess.in_last + 1})  # fmt: skip
        with contextlib.suppress(RemoteProtocolError):
            self.sess.receive(frame, self.now)

    @precondition(lambda self: self._alive())
    @rule(seq=small)
    def skip(self, seq: int) -> None:
        self.sess.skip(seq)

    @precondition(lambda self: self._alive())
    @rule(stream=st.none() | st.sampled_from(["r1", "r2"]), epoch=st.sampled_from(["e", "f"]),
          offset=small)  # fmt: skip
    def push(self, stream: str | None, epoch: str, offset: int) -> None:
        pos = None if stream is None else (stream, epoch, offset)
        fields: dict[str, Any] = {"e": "n", "d": offset}
        self._push(Outgoing("event", fields, pos))

    @precondition(lambda self: self._alive())
    @rule(stream=st.sampled_from(["r1", "r2"]), release=st.booleans())
    def hold(self, stream: str, release: bool) -> None:
        if release:
            for out in self.sess.release(stream):
                self._push(out)
        else:
            self.sess.hold(stream)

    @rule(limit=st.none() | st.integers(1, 4))
    def write(self, limit: int | None) -> None:
        self.sess.take_output_control()
        self.sess.take_pending(limit)

    @precondition(lambda self: self._alive() and self.conn is not None)
    @rule(n=small)
    def poll_ack(self, n: int) -> None:
        """A long-poll request's ``ack=``: any number a client cares to send."""
        with contextlib.suppress(RemoteProtocolError):
            self.sess.rewind(n)

    @precondition(lambda self: self._alive() and self.conn is not None)
    @rule()
    def detach(self) -> None:
        assert self.sess.detach(self.conn, self.now)
        self.conn = None

    @precondition(lambda self: self._alive())
    @rule(last=st.none() | small)
    def attach(self, last: int | None) -> None:
        """A connection opens: a resume from ``last`` when it can be served (the host
        checks), else a first connection of a new session only."""
        conn = object()
        if last is not None and self.sess.can_resume(last):
            hello = self.sess.attach(conn, self.now, HEARTBEAT, last)
            assert hello.recovered and hello.seq == last
        elif self.sess.state is SessionState.NEW:
            self.sess.attach(conn, self.now, HEARTBEAT, None)
        else:
            return  # the host would start a fresh session object instead
        self.conn = conn

    @invariant()
    def consistent(self) -> None:
        s = self.sess
        out = s.outbox
        assert s.in_last >= 0 and 0 <= s.rx_sent <= s.in_last
        if s.state is SessionState.CLOSED:
            assert out == [] and s.connection is None
            return
        assert len(out) <= SETTINGS.outbox_size
        assert [seq for seq, _ in out] == list(range(s.out_seq - len(out) + 1, s.out_seq + 1))
        assert s.floor == s.out_seq - len(out) + 1  # replayable exactly from floor
        assert s.written <= s.out_seq
        assert (s.state is SessionState.ATTACHED) == (s.connection is not None)
        if s.state is SessionState.ATTACHED:
            # Never behind what it can no longer replay (the host closes a connection
            # that falls behind by overflow; acks and polls must not put it there).
            assert s.written >= s.floor - 1


class PeerMachine(RuleBasedStateMachine):
    """A ClientPeer fed any server frames and hellos (the server may be anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.peer = ClientPeer(max_unconfirmed=6)

    @rule(kind=st.sampled_from(["event", "ack", "join", "leave"]), d=data)
    def send(self, kind: str, d: Any) -> None:
        if not self.peer.has_room():
            return
        if kind == "event":
            self.peer.event("e", d, self.peer.next_id())
        elif kind == "ack":
            self.peer.ack(1, True, d)
        elif kind == "join":
            self.peer.join("r", d)
        else:
            self.peer.leave("r")

    @rule(frame=_frames(small))
    def receive(self, frame: Frame) -> None:
        with contextlib.suppress(RemoteProtocolError):  # a gap: the client reconnects and resumes
            self.peer.receive(frame)

    @rule(frame=_frames(small))
    def receive_next(self, frame: Frame) -> None:
        if hasattr(frame, "s"):
            frame = type(frame)(**{**{k: getattr(frame, k) for k in frame.__slots__},  # type: ignore[attr-defined]
                                   "s": self.peer.in_last + 1})  # fmt: skip
        self.peer.receive(frame)  # in order: never an error

    @rule(sid=st.sampled_from(["s", "t"]), recovered=st.booleans(), seq=small, last=small)
    def hello(self, sid: str, recovered: bool, seq: int, last: int) -> None:
        before = (self.peer.out_seq, len(self.peer.unconfirmed), self.peer.in_last)
        try:
            resend = self.peer.on_hello(Hello(sid, recovered, seq, last))
        except RemoteProtocolError:
            # Refused, and nothing changed: the client closes and negotiates again.
            assert before == (self.peer.out_seq, len(self.peer.unconfirmed), self.peer.in_last)
            return
        assert resend == list(self.peer.unconfirmed)
        if recovered:
            # Whatever the server says it has processed was really sent, and nothing
            # it had confirmed is asked for again.
            assert last <= before[0]
            assert self.peer.in_last == before[2]

    @rule(force=st.booleans())
    def rx(self, force: bool) -> None:
        rx = self.peer.rx_due(force)
        assert rx is None or rx.n == self.peer.in_last

    @invariant()
    def consistent(self) -> None:
        p = self.peer
        seqs = [f.s for f in p.unconfirmed]  # type: ignore[attr-defined]
        assert seqs == list(range(p.out_seq - len(seqs) + 1, p.out_seq + 1))
        assert len(seqs) <= p.max_unconfirmed
        assert 0 <= p.rx_sent <= p.in_last or p.rx_sent == p.in_last


TestSessionMachine = SessionMachine.TestCase
TestPeerMachine = PeerMachine.TestCase
