"""The broker interface: how a publish reaches the sessions of every node.

Every event the application sends (to a room, a user, one session, or everyone in a
namespace) becomes an :class:`Envelope` on a stream (:mod:`anywire.core.streams`). The
broker assigns it its stream position, keeps a bounded history per stream, and hands each
envelope back to every node's ``deliver`` callback, the local node included. So one node
and many nodes share a single delivery path: the memory broker loops back in-process, the
Redis broker (scale-out) through Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.frames import StreamPos
from ..core.streams import StreamRead, target_stream

__all__ = ["Broker", "Envelope", "stream_of"]


@dataclass(slots=True)
class Envelope:
    """One publish. ``kind`` is ``room``, ``user``, ``session`` or ``all``; ``target`` is
    the room name, user id or session id (None for ``all``); ``skip`` a session id to leave
    out; ``pos`` is set by the broker.

    ``call`` makes the event a server call: ``(node, token)`` of the caller waiting for
    the client's ack (the ack id is the event's offset in the session's stream). ``key``
    is the application's idempotency key (``emit(..., id=...)``): a second publish with
    the same key to the same stream within the broker's window is not published again.
    ``at`` is the publish time (``time.time()``), carried to every node.
    """

    kind: str
    namespace: str
    target: str | None
    event: str
    data: Any
    skip: str | None = None
    pos: StreamPos | None = None
    call: tuple[str, str] | None = None
    key: str | None = None
    at: float | None = None
    """When it was published (wall clock, seconds): for the delivery-latency metric."""


class Broker(Protocol):
    """Fan-out between nodes, with per-stream offsets and bounded history."""

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        """Begin delivering envelopes (from every node) to ``deliver``."""
        ...

    async def publish(self, envelope: Envelope) -> StreamPos:
        """Give ``envelope`` its stream position and send it to every node (this one
        included); returns the position (an earlier one for a repeated ``key``). Raises
        :class:`~anywire.server.errors.BrokerUnavailable`, whose ``maybe_published`` says
        whether it may have been published all the same."""
        ...

    async def read(self, stream: str, epoch: str, after: int) -> StreamRead:
        """The history of ``stream`` after ``after`` if ``epoch`` is current, else from
        the start of the current epoch; a stream that does not exist yet is created (its
        epoch chosen) so that its offsets can be named from now on. Raises
        ``ConnectionError`` when history is unreachable."""
        ...

    async def entry(self, stream: str, epoch: str, offset: int) -> Envelope | None:
        """The envelope published at ``offset`` of ``stream`` in ``epoch``, if history
        still holds it (None otherwise, or when history is unreachable)."""
        ...

    async def want(self, stream: str, consumer: str) -> None:
        """Local session ``consumer`` starts consuming ``stream``: returns once this node
        receives the stream's publishes (a routing broker subscribed, and the
        subscription is confirmed), so a read of history afterwards misses nothing.
        Raises ``ConnectionError`` while that cannot be confirmed; the interest stays.
        Idempotent per (stream, consumer)."""
        ...

    def unwant(self, stream: str, consumer: str) -> None:
        """Local session ``consumer`` stopped consuming ``stream`` (left the room); the
        last one leaving lets the node unsubscribe (after a linger)."""
        ...

    def forget(self, consumer: str) -> None:
        """Local session ``consumer`` ended here: it consumes nothing any more."""
        ...

    def drop(self, stream: str) -> None:
        """Forget a session's stream: the session ended for good."""
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


def stream_of(envelope: Envelope) -> str:
    """The stream an envelope is published on."""
    return target_stream(envelope.kind, envelope.namespace, envelope.target)
