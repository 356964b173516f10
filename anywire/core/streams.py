"""Stream-level ordering: every room and every user's personal stream has its own offset.

A stream id is ``"room:<ns>:<room>"`` or ``"user:<ns>:<user>"``. Each publish gets the next
offset; the epoch is a random string chosen when the stream's history was created, so a
client holding an offset from a lost history (node restart, Redis flush) can tell it apart.
History is bounded; :meth:`StreamLog.since` returns None when the asked range is gone, and
the caller must then report ``recovered: false`` rather than deliver a partial range.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["StreamLog", "room_stream", "user_stream"]


def room_stream(ns: str, room: str) -> str:
    """Stream id of a room."""
    return f"room:{ns}:{room}"


def user_stream(ns: str, user: str) -> str:
    """Stream id of a user's personal stream."""
    return f"user:{ns}:{user}"


class StreamLog:
    """Bounded in-memory history of one stream. The epoch is supplied by the caller (the
    core has no randomness source of its own to keep tests deterministic)."""

    def __init__(self, stream: str, epoch: str, size: int) -> None:
        self.stream = stream
        self.epoch = epoch
        self.offset = 0
        self._history: deque[tuple[int, Any]] = deque(maxlen=size)

    def append(self, item: Any) -> int:
        """Record ``item`` and return its offset."""
        self.offset += 1
        self._history.append((self.offset, item))
        return self.offset

    def since(self, epoch: str, offset: int) -> list[Any] | None:
        """Items after ``offset``, or None if that range is no longer (or never was) here."""
        if epoch != self.epoch or offset > self.offset:
            return None
        if offset == self.offset:
            return []
        if not self._history or self._history[0][0] > offset + 1:
            return None
        return [item for off, item in self._history if off > offset]
