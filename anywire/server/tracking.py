"""What the session host tells its observers (``app.observers``, :mod:`.observe`).

The host makes one call here per event an operator cares about: a connection attached
(fresh or resumed) or ended, a ``$lost`` range sent, a flood refusal, an envelope
delivered (its publish-to-delivery latency, sampled). This module turns those into
:class:`~.observe.Observer` events, so the host's own code gains a line per event, not
the bookkeeping: which connection is which, how long it lived, how many frames it
carried.

Per-connection figures cost nothing on the hot path: a connection's frames are the
difference of its session's sequence numbers between attach and end.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..core.closecodes import CloseCode
from ..core.session import ServerSession
from ..core.streams import Lost
from ..transports.base import Link
from .broker import Envelope
from .observe import Connection
from .outgoing import lost_frame

if TYPE_CHECKING:
    from .host import SessionHost

__all__ = ["LATENCY_SAMPLE", "Tracker"]

LATENCY_SAMPLE = 16
"""One envelope in this many has its delivery latency reported (a clock read and a
listener call per envelope would show on the fan-out path of small rooms)."""

# Close codes a connection ends with that observers hear about as closed_for(reason).
_CLOSED_FOR: dict[int, str] = {CloseCode.FLOOD: "flood", CloseCode.SLOW_CONSUMER: "slow_consumer"}

# Ended without a close frame from either side (the peer vanished, a stream was dropped).
_ABNORMAL = 1006


class _Open:
    """One attached connection: who, since when, where its session's counts stood."""

    __slots__ = ("conn", "in0", "out0", "sess", "since")

    def __init__(self, conn: Connection, sess: ServerSession, since: float) -> None:
        self.conn = conn
        self.sess = sess
        self.since = since
        self.in0 = sess.in_last
        self.out0 = sess.written


class Tracker:
    """The host's side of the observers: connection records and event calls."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self.observers = host.app.observers
        self._open: dict[Link, _Open] = {}
        self._delivered = 0

    def __len__(self) -> int:
        return len(self._open)

    def attached(
        self, link: Link, sess: ServerSession, old: object, asked: bool, resumed: bool
    ) -> None:
        """``link`` now carries ``sess``: ``resumed`` it (the client asked to, ``asked``)
        or started it fresh; ``old`` is the connection it replaced, if any."""
        observers = self.observers
        if not observers:
            return
        if isinstance(old, Link) and old is not link:
            self.ended(old)
        origin, ip = link.peer
        conn = Connection(sess.sid, link.info.name, sess.namespace, sess.user, origin, ip)
        self._open[link] = _Open(conn, sess, asyncio.get_running_loop().time())
        if asked:
            observers.resumed("recovered" if resumed else "not_recovered")
        observers.connected(conn, resumed)

    def ended(self, link: object) -> None:
        """The connection behind ``link`` ended (or its session did): told once."""
        record = self._open.pop(link, None) if isinstance(link, Link) else None
        if record is None:
            return
        assert isinstance(link, Link)
        code = int(link.closing[0]) if link.closing is not None else _ABNORMAL
        sess = record.sess
        duration = asyncio.get_running_loop().time() - record.since
        frames_in = max(0, sess.in_last - record.in0)
        frames_out = max(0, sess.written - record.out0)
        self.observers.disconnected(record.conn, code, duration, frames_in, frames_out)
        reason = _CLOSED_FOR.get(code)
        if reason is not None:
            self.observers.closed_for(reason, record.conn)

    def lost(self, sess: ServerSession, lost: Lost, room: str | None = None) -> None:
        """Send ``sess`` the ``$lost`` event for ``lost`` (as
        :meth:`~anywire.core.session.ServerSession.clip_lost` returned it) and tell the
        observers."""
        self.host.push(sess, lost_frame(lost, room))
        if self.observers:
            count = None if lost.last is None else lost.last - lost.first + 1
            self.observers.lost(lost.stream, count)

    def flooded(self, sess: ServerSession) -> None:
        """A request or message of ``sess`` was refused for flood."""
        link = sess.connection
        if isinstance(link, Link):
            link.traffic.flood_refusals += 1
            record = self._open.get(link)
            if record is not None and link.traffic.flood_refusals == 1:  # once: no log flood
                self.observers.flood_refused(record.conn)

    def delivered(self, env: Envelope) -> None:
        """``env`` reached this node's sessions (queued for their writers): report its
        publish-to-delivery latency, one envelope in :data:`LATENCY_SAMPLE`."""
        self._delivered += 1
        if self._delivered % LATENCY_SAMPLE or env.at is None or not self.observers:
            return
        self.observers.delivery_latency(max(0.0, time.time() - env.at))
