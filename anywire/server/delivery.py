"""Delivery: from a published envelope to the frames a connection's writer takes (a base
class of :class:`~anywire.server.host.SessionHost`).

:meth:`Delivery.deliver` hands a broker envelope to the local sessions it targets (the
event is encoded once per codec and shared), :meth:`Delivery.push` queues a sequenced
frame in one session's outbox and wakes its writer (``deliver`` does the same inline, and
wakes no writer whose batched write is due: ``Link.due``), and :meth:`Delivery.outgoing` is
what that writer takes: the frames of the :class:`~anywire.transports.base.Host`
protocol's write side, spliced per connection from the shared bodies. This runs once
per recipient of every event: docs/perf/fanout.md measures it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.closecodes import CloseCode
from ..core.codec import Codec, Outgoing
from ..core.frames import Close, Rx
from ..core.rooms import Rooms
from ..core.session import ServerSession, SessionState
from ..core.settings import Settings
from ..core.streams import Lost
from ..transports.base import MESSAGE_BYTES, Link
from .broker import Broker, Envelope
from .catchup import held_catch_up
from .outgoing import body, event_frame, measure

if TYPE_CHECKING:
    from .app import Anywire
    from .calls import Calls
    from .faults import Faults
    from .tracking import Tracker

__all__ = ["Delivery"]

_ATTACHED = SessionState.ATTACHED  # (each SessionState.X is a metaclass lookup on 3.11)
_SLOW = "client too slow: buffer full"


class Delivery:
    """The per-recipient delivery methods of the session host."""

    app: Anywire
    settings: Settings
    broker: Broker
    sessions: dict[str, ServerSession]
    rooms: Rooms
    users: dict[tuple[str, str], set[str]]
    codecs: dict[str, Codec]
    calls: Calls
    track: Tracker
    faults: Faults | None

    def close_session(self, sess: ServerSession, code: int, reason: str) -> None:
        raise NotImplementedError  # SessionHost's

    def encodable(self, out: Outgoing) -> None:
        raise NotImplementedError  # SessionHost's

    def _wake(self, sess: ServerSession) -> None:
        raise NotImplementedError  # SessionHost's

    def deliver(self, env: Envelope) -> None:
        """Hand a broker envelope to the local sessions it targets (one encode per codec)."""
        kind, ns = env.kind, env.namespace
        if kind == "room":
            targets: Any = self.rooms.sids(ns, env.target or "")
        elif kind == "user":
            targets = list(self.users.get((ns, env.target or ""), ()))
            self.app.undelivered.check(env, targets)  # nobody connected: a push (undelivered.py)
        elif kind == "session":
            targets = [env.target]
        else:
            targets = [sid for sid, s in self.sessions.items() if s.namespace == ns]
        if not targets:
            # Nobody here (with --workers, every worker receives every event: most are
            # for rooms other workers host): building and encoding the frame was 5 us
            # per event wasted (bench/bus_receive.py, docs/scaling.md "Many cores").
            # The latency sample stays: it measures the bus, recipients or not.
            self.track.delivered(env)
            return
        if env.pos is None and env.event == "$lost" and isinstance(env.data, dict):
            self._deliver_lost(env, targets)
            return
        out = event_frame(env)
        self.encodable(out)
        self.track.delivered(env)
        call = env.call
        # Once per recipient: names bound outside the loop, and push() inlined (without
        # its measure(): encodable() encoded the event already; docs/perf/fanout.md).
        skip, get = env.skip, self.sessions.get
        for sid in targets:
            if sid == skip:
                continue
            sess = get(sid)
            if sess is None or sess.namespace != ns:
                continue
            if sess.push(out):
                if sess.written < sess.floor - 1 and sess.state is _ATTACHED:
                    self.close_session(sess, CloseCode.SLOW_CONSUMER, _SLOW)
                else:
                    link = sess.connection
                    # (due: a write of this link's is due and takes this frame too)
                    if isinstance(link, Link) and not link.due:
                        link.wake()
            if call is not None and env.pos is not None:
                self.calls.delivered(sid, env.pos[2], call)

    def _push_event(self, sess: ServerSession, env: Envelope) -> None:
        """Queue one envelope (from history) for one session."""
        self.push(sess, event_frame(env))
        if env.call is not None and env.pos is not None:
            self.calls.delivered(sess.sid, env.pos[2], env.call)

    async def _catch_up_held(
        self, sess: ServerSession, stream: str, since: tuple[str, int]
    ) -> None:
        """Catch ``sess`` (holding ``stream``) up from ``since``, then release it."""
        patience = self.settings.ping_interval + self.settings.ping_timeout
        caught = await held_catch_up(self.broker, sess, stream, since, patience)
        if caught is None:
            return
        _, lost, items, held = caught
        for gone in lost:
            self.track.lost(sess, gone)
        for env in items:
            self._push_event(sess, env)
        for out in held:
            self.push(sess, out)

    def _deliver_lost(self, env: Envelope, targets: list[str]) -> None:
        """A broker's ``$lost`` (this node missed publishes history no longer holds): to
        each local session of the stream, as far as it concerns that session."""
        data = env.data
        lost = Lost(str(data["stream"]), str(data["epoch"]), int(data["from"]), data.get("to"))
        room = env.target if env.kind == "room" else None
        for sid in targets:
            sess = self.sessions.get(sid)
            if sess is None or sess.namespace != env.namespace:
                continue
            clipped = sess.clip_lost(lost)
            if clipped is not None:
                self.track.lost(sess, clipped, room)

    def push(self, sess: ServerSession, out: Outgoing) -> None:
        """Queue a sequenced frame for one session and wake its writer (nothing happens
        for a stream event the session already has, or holds back during a catch-up).

        If the outbox overflowed past frames the connection has not even been given, the
        client cannot keep up: its connection is closed with 4002 SLOW_CONSUMER, and its
        resume will report ``recovered: false`` rather than skip frames silently.
        """
        if not sess.push(out if out.size else measure(out, sess, self.codecs)):
            return
        if sess.written < sess.floor - 1 and sess.state is _ATTACHED:
            self.close_session(sess, CloseCode.SLOW_CONSUMER, _SLOW)
            return
        link = sess.connection  # (what _wake() does, without its call: once per recipient)
        if isinstance(link, Link) and not link.due:
            link.wake()

    def outgoing(self, link: Link, limit: int | None = None) -> list[bytes]:
        out = link.queued
        link.queued = []
        sess = self.sessions.get(link.sid or "")  # (no sid yet: no session)
        codec = link.codec
        more = False
        if sess is not None and sess.connection is link:
            # (Neither control frames nor a receipt, the usual write: no call. A receipt
            # is never past in_last.)
            if sess.control or sess.in_last > sess.rx_sent:
                control, receipt = sess.take_output_control()
                for frame in control:
                    if type(frame) is Rx:
                        out.append(codec.rx(frame.n))
                    else:
                        out.append(codec.encode(frame.to_wire()))
                if receipt is not None:
                    out.append(codec.rx(receipt))
            if sess.written < sess.floor - 1 and link.closing is None:
                # Overflowed past frames this connection was never given, unchecked by
                # push() (pushed before the hello): take_pending() hands out nothing.
                self.close_session(sess, CloseCode.SLOW_CONSUMER, _SLOW)
            faults = self.faults  # None unless a test installed it
            seq = sess.written
            item = None
            if seq + 1 == sess.out_seq and faults is None and limit != 0:
                item = sess.take_next()
            if item is not None:  # the usual fan-out: one new frame for this connection
                seq += 1
                try:  # (_frame() inlined: this runs once per recipient)
                    out.append(item.frame(codec, seq))
                except TypeError:
                    out.append(_frame(item, codec, seq))
                # (more stays False: take_next() handed the last frame pushed.)
            else:  # a run of frames (a busy room's batch, a replay)
                cap = MESSAGE_BYTES if link.info.server_ping else None  # streams: base.py
                if faults is None:
                    for item in sess.take_run(limit, cap):
                        seq += 1
                        try:  # (_frame() inlined, as above)
                            out.append(item.frame(codec, seq))
                        except TypeError:
                            out.append(_frame(item, codec, seq))
                else:
                    pending = faults.pending(link, sess, sess.take_pending(limit, cap))
                    for seq, item in pending:
                        out.append(_frame(item, codec, seq))
                # Control and the rx receipt were all taken: only sequenced frames can
                # remain.
                more = sess.written < sess.out_seq
        link.more = more
        if link.closing is not None:
            code, reason = link.closing
            out.append(codec.encode(Close(code, reason).to_wire()))
        link.traffic.frames_out += len(out)  # per transport (metrics)
        return out

    def has_pending(self, link: Link) -> bool:
        if link.queued or link.closing is not None:
            return True
        sess = self.sessions.get(link.sid) if link.sid is not None else None
        return sess is not None and sess.connection is link and sess.has_output()


def _frame(item: Outgoing, codec: Codec, seq: int) -> bytes:
    """``item`` numbered ``seq`` for ``codec`` (spliced: :meth:`Outgoing.frame`); an ack
    whose result the codec cannot carry becomes an error ack (:func:`.outgoing.body`)."""
    try:
        return item.frame(codec, seq)
    except TypeError:
        return codec.frame(item.type, seq, body(item, codec))
