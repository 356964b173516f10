"""Entering and leaving rooms: client ``join``/``leave`` requests and server-side joins.

A session that enters a room starts consuming the room's stream, and it starts from a
position it is told: the join answer carries ``position``, where the session's events of
the room continue from. With ``since`` (or a position the client reported at negotiate,
for a room a fresh session is joined to server side) the room's events after it are
replayed first (:mod:`.catchup`), and what history no longer holds is announced with
``$lost``: the client's stream is complete or says where it is not.

What a join costs the server is bounded: a client's ``meta`` larger than
``max_meta_size`` (encoded) is refused before anything keeps it, and an answer lists at
most ``presence_limit`` members (``count`` says how many there are, ``partial`` whether
the list was cut), so answering a busy room many times cannot add up (issue #13).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.codec import Codec
from ..core.frames import Join, Leave
from ..core.session import ServerSession
from ..core.streams import room_stream
from .catchup import held_catch_up
from .errors import Reject
from .outgoing import event_frame

if TYPE_CHECKING:
    from .host import SessionHost
    from .socket import Socket

__all__ = ["Joins", "meta_refusal", "page"]


class Joins:
    """Room entry and exit for the sessions of one host."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host

    async def on_join(self, sess: ServerSession, socket: Socket, frame: Join) -> None:
        """A client's join request (a task of the session): authorize, enter, answer."""
        host = self.host
        refusal = meta_refusal(host.codecs.values(), frame.meta, host.settings.max_meta_size)
        if refusal is not None:
            host.reply(sess, frame.id, False, None, "bad_request", refusal)
            return
        try:
            allowed = await host.app.authorize_join(socket, frame.r, frame.meta)
        except Reject as exc:
            host.reply(sess, frame.id, False, None, "forbidden", exc.message)
            return
        except Exception as exc:
            host.reply(sess, frame.id, False, None, "handler_error", str(exc))
            return
        if not allowed:
            host.reply(sess, frame.id, False, None, "forbidden", "join refused")
            return
        others: list[dict[str, Any]] = []
        if host.cluster is not None:
            others = await host.cluster.members_elsewhere(sess.namespace, frame.r)
        await self.enter(sess, frame.r, frame.meta, frame.since, (frame.id, others))

    def on_leave(self, sess: ServerSession, frame: Leave) -> None:
        """A client's leave request: always answered ``{room}``, member or not."""
        self.host.leave(sess, frame.r)
        self.host.reply(sess, frame.id, True, {"room": frame.r})

    async def enter(
        self,
        sess: ServerSession,
        room: str,
        meta: Any,
        since: tuple[str, int] | None,
        answer: tuple[int, list[dict[str, Any]]] | None = None,
    ) -> None:
        """Put ``sess`` in ``room`` and catch it up from ``since`` (or from the position
        the client reported at negotiate; None and none: from now on). ``answer`` is
        ``(ack id, members on other nodes)`` for a client request, answered once caught
        up; a server-side join (no ``answer``) returns once the session is in the room,
        and its catch-up follows in a task of the session (a connect hook is not held up
        by a slow Redis). Raises TypeError for ``meta`` a codec cannot carry (answered
        ``bad_request`` for a request)."""
        host = self.host
        stream = room_stream(sess.namespace, room)
        if since is None:
            since = sess.reported_position(stream)
        try:
            # Checked before entering: a meta that some codec cannot carry (2^64 for
            # MessagePack, NaN for JSON) would fail the $join announcement half way, and
            # then the $leave that undoes it the same way, leaving the request unanswered.
            host.check_sendable("$join", meta)
        except TypeError as exc:
            if answer is None:
                raise
            host.reply(sess, answer[0], False, None, "bad_request", f"meta not sendable: {exc}")
            return
        members = host.join(sess, room, meta)
        # Live events of the room wait until history has been replayed (no await between
        # entering the room and holding its stream: nothing can slip past both).
        sess.hold(stream)
        catching_up = self._catch_up(sess, room, stream, since, members, answer)
        if answer is None:
            host.spawn(catching_up, sess.sid)
        else:
            await catching_up

    async def _catch_up(
        self,
        sess: ServerSession,
        room: str,
        stream: str,
        since: tuple[str, int] | None,
        members: list[dict[str, Any]],
        answer: tuple[int, list[dict[str, Any]]] | None,
    ) -> None:
        host = self.host
        # A Redis paused or restarting delays the catch-up (the answer waits: the client's
        # rejoin has no timeout); only history unreachable for longer than a heartbeat
        # period is announced lost.
        patience = host.settings.ping_interval + host.settings.ping_timeout
        caught = await held_catch_up(host.broker, sess, stream, since, patience)
        if caught is None:
            return
        start, lost, items, held = caught
        if answer is not None:
            ack_id, others = answer
            present = {m["sid"] for m in members}
            members += [m for m in others if m["sid"] not in present]
            listed = page(members, sess.sid, host.settings.presence_limit)
            reply: dict[str, Any] = {
                "room": room,
                "presence": listed,
                "count": len(members),
                "partial": len(listed) < len(members),
            }
            if start is not None:
                reply["position"] = list(start)
            if since is not None:
                reply["recovered"] = not lost
            # The answer first, then what was missed, then live events: the client learns
            # where it stands before it sees the filler.
            host.reply(sess, ack_id, True, reply)
        for gone in lost:
            host.track.lost(sess, gone, room)
        for env in items:
            host.push(sess, event_frame(env))
        for out in held:
            host.push(sess, out)


def meta_refusal(codecs: Iterable[Codec], meta: Any, limit: int) -> str | None:
    """Why a client's presence ``meta`` is refused (``bad_request``), or None: larger
    than ``limit`` bytes in any codec. Meta no codec can carry is left to the join
    itself, which refuses it with the codec's reason."""
    if meta is None:
        return None
    for codec in codecs:
        try:
            size = len(codec.encode_body({"meta": meta}))
        except TypeError:
            return None
        if size > limit:
            return f"meta of {size} bytes exceeds max_meta_size {limit}"
    return None


def page(members: list[dict[str, Any]], sid: str, limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` presence entries of ``members``: the joiner's own (``sid``)
    always, then the others in order."""
    if len(members) <= limit:
        return members
    own = [m for m in members if m["sid"] == sid]
    others = [m for m in members if m["sid"] != sid]
    return (own + others)[: max(limit, len(own))]
