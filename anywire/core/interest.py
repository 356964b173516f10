"""Which streams this node needs to receive (sans-I/O): the interest table of routing.

With interest-based routing a node subscribes only to the channels of the streams its
local sessions consume (a room they are in, their users', their own, their namespace's).
:class:`Interest` counts those consumers per stream and answers the only questions the
broker asks: which streams to subscribe now, which to unsubscribe now.

A stream whose last consumer leaves is not dropped at once: it *lingers* for ``linger``
seconds, so a leave followed by a join, or a session reconnecting (its old copy ends, its
fresh copy starts), does not unsubscribe and resubscribe. A consumer coming back within
the linger takes the stream over as if it had never gone.

Consumers are named (a session id): adding the same consumer twice counts once, and
:meth:`Interest.forget` removes a consumer from every stream it was in, so an ended
session cannot leave a stream subscribed forever however its ends were reached.

The caller passes the time (any monotonic clock, in seconds): no clock here.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Interest"]


class Interest:
    """Consumers per stream, with a linger for streams nobody consumes any more.

    Bounds: one entry per stream consumed locally, plus the streams that lost their last
    consumer within the last ``linger`` seconds.
    """

    def __init__(self, linger: float = 5.0) -> None:
        if linger < 0:
            raise ValueError("linger must be >= 0")
        self.linger = linger
        self._consumers: dict[str, set[Hashable]] = {}
        self._streams_of: dict[Hashable, set[str]] = {}
        # Streams without consumers, still subscribed until this time (insertion order is
        # the order they became idle, so expiry scans stop at the first one not due).
        self._idle: dict[str, float] = {}
        self._subscribe: set[str] = set()  # wanted since the last take(), not subscribed

    def __len__(self) -> int:
        """Streams to be subscribed: consumed now or lingering."""
        return len(self._consumers) + len(self._idle)

    def __contains__(self, stream: object) -> bool:
        return stream in self._consumers or stream in self._idle

    def consumers(self, stream: str) -> int:
        """How many local consumers ``stream`` has (0 while it lingers or is unknown)."""
        return len(self._consumers.get(stream, ()))

    def streams(self) -> list[str]:
        """Every stream to be subscribed (consumed or lingering)."""
        return [*self._consumers, *self._idle]

    def add(self, stream: str, consumer: Hashable) -> bool:
        """``consumer`` consumes ``stream``. True when the stream was not subscribed (nor
        lingering): the caller must subscribe it (it is also in the next :meth:`take`)."""
        users = self._consumers.get(stream)
        if users is None:
            lingering = self._idle.pop(stream, None) is not None
            users = self._consumers[stream] = set()
            if not lingering:
                self._subscribe.add(stream)
        users.add(consumer)
        self._streams_of.setdefault(consumer, set()).add(stream)
        return stream in self._subscribe

    def remove(self, stream: str, consumer: Hashable, now: float) -> bool:
        """``consumer`` no longer consumes ``stream`` (idempotent). The stream's last
        consumer leaving starts its linger. True when the stream is gone altogether (it
        was never subscribed: no linger)."""
        mine = self._streams_of.get(consumer)
        if mine is not None:
            mine.discard(stream)
            if not mine:
                del self._streams_of[consumer]
        users = self._consumers.get(stream)
        if users is None or consumer not in users:
            return False
        users.discard(consumer)
        if users:
            return False
        del self._consumers[stream]
        if stream in self._subscribe:
            # Never subscribed: nothing to linger on.
            self._subscribe.discard(stream)
            return True
        self._idle[stream] = now + self.linger
        return False

    def forget(self, consumer: Hashable, now: float) -> list[str]:
        """``consumer`` ended: it leaves every stream it consumed. Returns the streams
        gone altogether (see :meth:`remove`)."""
        gone = []
        for stream in list(self._streams_of.get(consumer, ())):
            if self.remove(stream, consumer, now):
                gone.append(stream)
        return gone

    def take(self, now: float) -> tuple[list[str], list[str]]:
        """What changed since the last call: ``(subscribe, unsubscribe)``. Streams to
        subscribe were wanted and are not subscribed; streams to unsubscribe lingered
        past their time. Both are forgotten here: the caller acts on them (batched)."""
        subscribe = [s for s in self._subscribe if s in self._consumers]
        self._subscribe.clear()
        unsubscribe: list[str] = []
        for stream, due in self._idle.items():
            if due > now:
                break
            unsubscribe.append(stream)
        for stream in unsubscribe:
            del self._idle[stream]
        return subscribe, unsubscribe

    def next_due(self) -> float | None:
        """When the first lingering stream is due to be unsubscribed (None: none is)."""
        for due in self._idle.values():
            return due
        return None
