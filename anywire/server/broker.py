"""The broker interface: how a publish reaches the sessions of every node.

Every broadcast (to a room, a user, everyone, or one session) becomes an
:class:`Envelope`. The broker assigns room and user envelopes their stream position,
keeps a bounded history per stream, and hands each envelope back to every node's
``deliver`` callback, the local node included. So one node and many nodes share a single
delivery path: the memory broker loops back in-process, the Redis broker (scale-out)
through Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.frames import StreamPos
from ..core.streams import room_stream, user_stream

__all__ = ["Broker", "Envelope", "stream_of"]


@dataclass(slots=True)
class Envelope:
    """One publish. ``kind`` is ``room``, ``user``, ``all`` or ``session``; ``target`` is
    the room name, user id or session id (None for ``all``); ``skip`` a session id to leave
    out; ``pos`` is set by the broker for room and user streams."""

    kind: str
    namespace: str
    target: str | None
    event: str
    data: Any
    skip: str | None = None
    pos: StreamPos | None = None


class Broker(Protocol):
    """Fan-out between nodes, with per-stream offsets and bounded history."""

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        """Begin delivering envelopes (from every node) to ``deliver``."""
        ...

    async def publish(self, envelope: Envelope) -> None:
        """Send ``envelope`` to every node (this one included)."""
        ...

    async def history(self, stream: str, epoch: str, offset: int) -> list[Envelope] | None:
        """Envelopes of ``stream`` after ``offset``, or None if that range is gone."""
        ...

    async def stop(self) -> None:
        """Stop delivering and release resources."""
        ...

    def position(self, stream: str) -> tuple[str, int] | None:
        """``(epoch, offset)`` up to which this node has delivered ``stream`` to its local
        sessions (None if it has not seen the stream). A catch-up from history replays up
        to here; later offsets reach a freshly joined session live."""
        ...

    def seed(self, stream: str, epoch: str, offset: int) -> None:
        """Start tracking ``stream`` at a position just read from history (no-op for a
        broker that delivers synchronously)."""
        ...

    def state(self) -> str:
        """``ok``, ``degraded`` or ``down``, for the health endpoint."""
        ...


def stream_of(envelope: Envelope) -> str | None:
    """The stream a room or user envelope belongs to (None for ``all`` and ``session``)."""
    if envelope.kind == "room" and envelope.target is not None:
        return room_stream(envelope.namespace, envelope.target)
    if envelope.kind == "user" and envelope.target is not None:
        return user_stream(envelope.namespace, envelope.target)
    return None
