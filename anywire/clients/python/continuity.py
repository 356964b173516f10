"""What keeps a client's streams complete across lost sessions (no I/O).

The client's sequencing state (:class:`~anywire.core.peer.ClientPeer`) makes one session
exactly-once. Across sessions (a node failed, the resume window passed) this module keeps
the promise: every event of every stream reaches the application once, in order, or a
``$lost`` says what did not.

* Every stream event is checked against the client's position in its stream
  (:class:`~anywire.core.positions.StreamPositions`): a duplicate is dropped and counted.
* Positions go to every negotiate (``since``) and to every rejoin, so a fresh session
  replays what was missed; a ``$lost`` moves the position past what it announces.
* Rooms and pending joins (:class:`~anywire.core.joins.JoinRegistry`) are sent again in a
  fresh session, ahead of the frames the client resends, with up-to-date positions;
  nothing times them out.
* Requests a lost session had received but not answered can never be answered: the
  client is told which, at once (:meth:`Continuity.on_hello`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...core.frames import Ack, Event, Frame, Hello, Join, Leave
from ...core.joins import JoinRegistry, PendingJoin
from ...core.peer import ClientPeer
from ...core.positions import StreamPositions
from ...core.streams import room_stream
from .errors import RequestLost

__all__ = ["Continuity", "settle_lost"]


class Continuity:
    """Positions, rooms and open requests of one client, kept across its sessions."""

    def __init__(self, peer: ClientPeer, namespace: str) -> None:
        self.peer = peer
        self.namespace = namespace
        self.positions = StreamPositions(namespace)
        self.joins = JoinRegistry()
        self._requests: dict[int, tuple[str, str | None]] = {}  # id -> (kind, room)

    # -- outbound ---------------------------------------------------------------------------
    def event(self, name: str, data: Any, ack_id: int | None = None) -> Event:
        """Track an event (a request when it has ``ack_id``)."""
        frame = self.peer.event(name, data, ack_id=ack_id)
        if ack_id is not None:
            self._requests[ack_id] = ("event", None)
        return frame

    def join(self, room: str, meta: Any, since: tuple[str, int] | None) -> Join:
        """Track a join; it stays pending until answered, whatever happens meanwhile."""
        frame = self.peer.join(room, meta, since)
        self.joins.requested(frame.id, room, meta)
        self._requests[frame.id] = ("join", room)
        return frame

    def leave(self, room: str) -> Leave:
        """Track a leave: the room is no longer the client's (nor pending)."""
        self.joins.left(room)
        self.positions.forget(room_stream(self.namespace, room))
        frame = self.peer.leave(room)
        self._requests[frame.id] = ("leave", room)
        return frame

    def gave_up(self, ack_id: int) -> None:
        """The application stopped waiting for ``ack_id`` (a join stays pending)."""
        kind = self._requests.get(ack_id)
        if kind is not None and kind[0] != "join":
            del self._requests[ack_id]

    def since(self) -> list[list[object]]:
        """Negotiate's ``since``: every stream position the client holds."""
        return self.positions.since()

    # -- inbound ----------------------------------------------------------------------------
    def accept(self, event: Event) -> bool:
        """Whether ``event`` goes to the application (False: a duplicate, counted)."""
        if event.o is not None and not self.positions.accept(event.o):
            return False
        d = event.d
        if event.e == "$lost" and event.o is None and isinstance(d, dict):
            stream, epoch, last = d.get("stream"), d.get("epoch"), d.get("to")
            if isinstance(stream, str) and isinstance(epoch, str):
                if self.positions.left(stream, epoch):
                    # About an epoch the client has moved on from: told already.
                    self.positions.duplicates += 1
                    return False
                self.positions.lost(stream, epoch, last if isinstance(last, int) else None)
        return True

    def answered(self, ack: Ack) -> PendingJoin | None:
        """Apply an answer; returns the join it answered, if it was one."""
        self._requests.pop(ack.id, None)
        join = self.joins.answered(ack.id, ack.ok)
        if join is not None and ack.ok and isinstance(ack.d, dict):
            _presence_summary(ack.d)
        if join is not None and ack.ok and not join.cancelled and isinstance(ack.d, dict):
            where = ack.d.get("position")
            if isinstance(where, list) and len(where) == 2:
                stream = room_stream(self.namespace, join.room)
                self.positions.start(stream, str(where[0]), int(where[1]))
        return join

    def on_hello(self, hello: Hello) -> tuple[list[Frame], list[tuple[int, str, str | None]]]:
        """Apply a hello: returns the frames to send (rejoins first, then the resent
        ones) and the open requests that will never be answered, as ``(id, kind, room)``:
        those the lost session had received (a fresh hello only)."""
        if hello.recovered:
            return self.peer.on_hello(hello), []
        unconfirmed = {f.id for f in self.peer.unconfirmed if isinstance(f, Event | Join | Leave)}
        resent_joins = {f.id for f in self.peer.unconfirmed if isinstance(f, Join)}
        send, dropped = self.joins.fresh_session(resent_joins)
        first: list[Frame] = []
        for join in send:
            ack_id = join.id or self.peer.next_id()
            if not join.id:
                self.joins.requested(ack_id, join.room, join.meta, rejoin=True)
                self._requests[ack_id] = ("join", join.room)
            first.append(Join(0, ack_id, join.room, join.meta, self.positions.room(join.room)))
        frames = self.peer.on_hello(hello, first, self._refresh)
        self.positions.fresh(hello.streams)
        alive = unconfirmed | {f.id for f in first if isinstance(f, Join)}
        lost = [(i, k, r) for i, (k, r) in self._requests.items() if i not in alive]
        for ack_id, _, _ in lost:
            del self._requests[ack_id]
        lost += [(j.id, "join", j.room) for j in dropped if j.id not in {x for x, _, _ in lost}]
        return frames, lost

    def _refresh(self, frame: Frame) -> Frame:
        """A resent join asks ``since`` the client's current position in its room."""
        if isinstance(frame, Join):
            since = self.positions.room(frame.r) or frame.since
            return Join(frame.s, frame.id, frame.r, frame.meta, since)
        return frame


def _presence_summary(answer: dict[str, Any]) -> None:
    """Every join answer says ``count`` (members in the room) and ``partial`` (whether
    ``presence`` lists only some of them: the server lists at most its
    ``presence_limit``); filled in from the list for a server that does not send them."""
    presence = answer.get("presence")
    listed = len(presence) if isinstance(presence, list) else 0
    if not isinstance(answer.get("count"), int):
        answer["count"] = listed
    answer["partial"] = answer.get("partial") is True


def settle_lost(
    calls: dict[int, asyncio.Future[Any]], unanswerable: list[tuple[int, str, str | None]]
) -> None:
    """Settle the calls a lost session had received and will never answer (from
    :meth:`Continuity.on_hello`): a leave succeeded (a fresh session is in no room),
    anything else fails with :class:`RequestLost` (it may have run)."""
    for ack_id, kind, room in unanswerable:
        fut = calls.pop(ack_id, None)
        if fut is None or fut.done():
            continue
        if kind == "leave":
            fut.set_result({"room": room})
        else:
            fut.set_exception(
                RequestLost(f"request {ack_id} was lost with its session; it may have run")
            )
