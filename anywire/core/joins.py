"""Client side: the rooms a client is in, and its joins awaiting an answer (sans-I/O).

Shared by every client (the JavaScript client mirrors it). The rules that keep a client's
rooms complete whatever happens to its sessions:

* A join is **pending** from the moment it is sent until its answer arrives, however long
  that takes: the answer is applied when it comes (the room is recorded), even after the
  application stopped waiting for it. Nothing times out a join's bookkeeping.
* When a fresh session replaces a lost one (``hello`` with ``recovered: false``), every
  room the client is in and every pending join must be sent again in the new session:
  :meth:`JoinRegistry.fresh_session` says which, keeping a pending join's id so its
  waiter gets the answer. A join still among the frames the client resends anyway is
  not sent twice.
* Leaving a room cancels its pending joins: their answers no longer make it a room the
  client is in, and they are not sent again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = ["JoinRegistry", "PendingJoin"]


@dataclass(slots=True)
class PendingJoin:
    """A join sent and not yet answered. ``rejoin``: sent by the client itself after a
    lost session (no application waits for it)."""

    id: int
    room: str
    meta: Any = None
    rejoin: bool = False
    cancelled: bool = False


class JoinRegistry:
    """Rooms joined (with their presence meta) and joins pending, in request order."""

    def __init__(self) -> None:
        self.rooms: dict[str, Any] = {}
        self.pending: dict[int, PendingJoin] = {}

    def requested(self, ack_id: int, room: str, meta: Any, rejoin: bool = False) -> None:
        """A join of ``room`` was sent with id ``ack_id``."""
        self.pending[ack_id] = PendingJoin(ack_id, room, meta, rejoin)

    def left(self, room: str) -> None:
        """The application left ``room``: it is no longer a room of the client, and no
        pending join of it will make it one again."""
        self.rooms.pop(room, None)
        for join in self.pending.values():
            if join.room == room:
                join.cancelled = True

    def answered(self, ack_id: int, ok: bool) -> PendingJoin | None:
        """The answer to ``ack_id`` arrived: returns the join it answers (None if it was
        not a pending join). An accepted join makes the room the client's; a refused
        rejoin removes it (the application learns through the refusal's log)."""
        join = self.pending.pop(ack_id, None)
        if join is None or join.cancelled:
            return join
        if ok:
            self.rooms[join.room] = join.meta
        elif join.rejoin:
            self.rooms.pop(join.room, None)
        return join

    def fresh_session(self, resent: Collection[int]) -> tuple[list[PendingJoin], list[PendingJoin]]:
        """The session was replaced by a fresh one, which is in no room. Returns the joins
        to send in it, in order (pending ones keep their id; a room the client is in gets
        id 0: the caller assigns one), and the cancelled pending joins that will never be
        answered now (the caller fails their waiters). ``resent``: ids of pending joins
        still among the frames the client resends anyway (left alone)."""
        dropped = [j for j in self.pending.values() if j.cancelled and j.id not in resent]
        for join in dropped:
            del self.pending[join.id]
        waiting = {j.room for j in self.pending.values() if not j.cancelled}
        send = [PendingJoin(0, room, meta, rejoin=True) for room, meta in self.rooms.items()
                if room not in waiting]  # fmt: skip
        send += [j for j in self.pending.values() if not j.cancelled and j.id not in resent]
        return send, dropped
