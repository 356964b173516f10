"""Client side: where the client stands in every stream it receives (sans-I/O).

Shared by every client (the JavaScript client mirrors it). A position is the ``(epoch,
offset)`` of the last event of a stream the client holds. It serves three purposes:

* **catching up**: after a lost session the client reports every position at negotiate
  (``since``), and rooms it joins again ask ``since`` their position, so the server
  replays exactly what it missed (or announces it with ``$lost``);
* **the second line of dedupe**: an event at or below the position in the same epoch is
  dropped, and counted (:attr:`StreamPositions.duplicates`). The server never sends one
  (its sessions dedupe per stream too), so the count stays 0 unless something is wrong:
  tests assert it, and it cannot hide a server bug;
* **starting points**: a fresh session's ``hello`` lists where each stream the session
  receives without joining starts, and a join answer where the room starts, so a stream
  the client has received nothing from yet still has a position to catch up from.

An epoch the client has moved on from (its position went to another epoch of the stream)
is *left*: history restarted after it and never goes back to it, so an event of a left
epoch, or a ``$lost`` about one, is a repeat of something the client already had
(:meth:`StreamPositions.left`; docs/reliability/sentinel-duplicates.md: a copy of a
session left on another node replayed a whole outbox from before a failover).
"""

from __future__ import annotations

from collections import OrderedDict

from .frames import StreamPos
from .streams import room_stream

__all__ = ["StreamPositions"]

_MAX = 1000  # positions kept (the negotiate body carries them all)
_LEFT = 4  # epochs left behind remembered per stream (each failover leaves one)


class StreamPositions:
    """Positions per stream id, bounded (the least recently moved is forgotten)."""

    def __init__(self, namespace: str = "/", limit: int = _MAX) -> None:
        self.namespace = namespace
        self.limit = limit
        self._at: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._implicit: tuple[str, ...] = ()
        self._left: dict[str, tuple[str, ...]] = {}  # stream -> epochs moved on from
        self.duplicates = 0
        """Events dropped because the client already had them: their offset, an epoch it
        has moved on from, or a ``$lost`` about one (should stay 0)."""

    def accept(self, pos: StreamPos) -> bool:
        """An event at ``pos`` arrived: True to deliver it (and move the position), False
        for a duplicate (counted)."""
        stream, epoch, offset = pos
        held = self._at.get(stream)
        if (held is not None and held[0] == epoch and offset <= held[1]) or (
            self._left and self.left(stream, epoch)  # (empty but after a failover)
        ):
            self.duplicates += 1
            return False
        self._set(stream, epoch, offset)
        return True

    def left(self, stream: str, epoch: str) -> bool:
        """Whether the client has moved on from ``epoch`` of ``stream`` (to a later one):
        nothing of it can be new."""
        return epoch in self._left.get(stream, ())

    def get(self, stream: str) -> tuple[str, int] | None:
        """The position held in ``stream``, if any."""
        return self._at.get(stream)

    def room(self, room: str) -> tuple[str, int] | None:
        """The position held in ``room``'s stream, if any."""
        return self._at.get(room_stream(self.namespace, room))

    def implicit(self, kind: str) -> tuple[str, int] | None:
        """The position in the stream of ``kind`` (``user``, ``sess``, ``all``) that the
        last fresh hello listed, if any."""
        for stream in self._implicit:
            if stream.startswith(kind + ":"):
                return self._at.get(stream)
        return None

    def rooms(self) -> dict[str, tuple[str, int]]:
        """Position per room name (rooms of this namespace)."""
        prefix = room_stream(self.namespace, "")
        return {s[len(prefix) :]: p for s, p in self._at.items() if s.startswith(prefix)}

    def start(self, stream: str, epoch: str, offset: int) -> None:
        """The server says the client stands at ``(epoch, offset)`` in ``stream`` (a join
        answer's ``position``, a fresh hello's ``streams``): events after it follow. A
        later position the client holds in that epoch is kept."""
        held = self._at.get(stream)
        if self._left and self.left(stream, epoch):
            return  # a node that has not seen the new epoch yet: never move back
        if held is None or held[0] != epoch or held[1] < offset:
            self._set(stream, epoch, offset)

    def lost(self, stream: str, epoch: str, last: int | None) -> None:
        """A ``$lost`` announced ``... last`` of ``stream``: the client moves past it
        (nothing to move to when the count is unknown: the next event brings the new
        epoch)."""
        held = self._at.get(stream)
        if self._left and self.left(stream, epoch):
            return  # announced already: the client has moved on from that epoch
        if last is not None and (held is None or held[0] != epoch or held[1] < last):
            self._set(stream, epoch, last)

    def fresh(self, streams: tuple[StreamPos, ...] | None) -> None:
        """A fresh session's hello: where the streams it receives without joining start.
        Those of the previous session that it does not list (its own stream, under
        another sid) are forgotten (the server announced them lost)."""
        listed = tuple(s for s, _, _ in streams or ())
        for stream in self._implicit:
            if stream not in listed:
                self.forget(stream)
        for stream, epoch, offset in streams or ():
            self.start(stream, epoch, offset)
        self._implicit = listed

    def forget(self, stream: str) -> None:
        """Stop tracking ``stream`` (the client left the room)."""
        self._at.pop(stream, None)
        self._left.pop(stream, None)

    def since(self) -> list[list[object]]:
        """Every position, as negotiate's ``since``."""
        return [[s, e, o] for s, (e, o) in self._at.items()]

    def _set(self, stream: str, epoch: str, offset: int) -> None:
        held = self._at.get(stream)
        if held is not None and held[0] != epoch:
            # Moved on to another epoch: the one held is left for good.
            left = self._left.get(stream, ())
            self._left[stream] = (*left, held[0])[-_LEFT:]
        self._at[stream] = (epoch, offset)
        self._at.move_to_end(stream)
        while len(self._at) > self.limit:
            gone, _ = self._at.popitem(last=False)
            self._left.pop(gone, None)
