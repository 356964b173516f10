"""The server's sequenced frames as the host builds them: events from envelopes, acks,
``$lost`` announcements, and the writer-side encoding of a body.

An event's body is encoded once per codec and shared by every session it goes to (a room
broadcast is serialized once, not once per recipient).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.codec import Codec, Outgoing
from ..core.session import ServerSession
from ..core.streams import Lost
from ..transports.base import Link
from .broker import Envelope

__all__ = ["ack_frame", "body", "event_frame", "lost_frame", "measure"]


def event_frame(env: Envelope) -> Outgoing:
    """The event frame an envelope becomes. A server call carries ``id``: its offset in
    the session's stream, which is unique there and survives a replay."""
    fields: dict[str, Any] = {}
    pos = env.pos
    if env.call is not None and pos is not None:
        fields["id"] = pos[2]
    fields["e"] = env.event
    fields["d"] = env.data
    if env.kind == "room":
        fields["r"] = env.target
    if pos is not None:
        fields["o"] = list(pos)
    return Outgoing("event", fields, pos)


def lost_frame(lost: Lost, room: str | None = None) -> Outgoing:
    """The ``$lost`` event: ``lost.first .. lost.last`` of a stream will never arrive
    (``to`` null: everything after ``from - 1`` in that epoch, count unknown); see
    docs/protocol.md, section 7."""
    data: dict[str, Any] = {
        "stream": lost.stream,
        "epoch": lost.epoch,
        "from": lost.first,
        "to": lost.last,
    }
    if room is not None:
        data["room"] = room
    fields: dict[str, Any] = {"e": "$lost", "d": data}
    if room is not None:
        fields["r"] = room
    return Outgoing("event", fields)


def ack_frame(ack_id: int, ok: bool, data: Any, code: str = "", message: str = "") -> Outgoing:
    """The ack frame answering ``ack_id``: ``data`` if ``ok``, else the error."""
    if ok:
        return Outgoing("ack", {"id": ack_id, "ok": True, "d": data})
    err = {"code": code, "message": message[:1000]}
    return Outgoing("ack", {"id": ack_id, "ok": False, "err": err})


def body(item: Outgoing, codec: Codec) -> bytes:
    """``item``'s body for ``codec`` (encoded once per codec, cached). Acks are encoded
    here, by the writer, not when the handler returns: a result the codec cannot carry
    becomes an error ack with the same id (``handler_error``), never a dead writer.
    Events are checked against every codec when they are created."""
    try:
        return item.body(codec)
    except TypeError as exc:
        if item.type != "ack":
            raise  # events are checked against every codec when created
        fields = {
            "id": item.fields.get("id"),
            "ok": False,
            "err": {"code": "handler_error", "message": f"result not sendable: {exc}"},
        }
        encoded = codec.encode_body(fields)
        if not item.size:  # (its size in the session's outbox: what it will cost)
            item.size = len(encoded)
        return encoded


def measure(item: Outgoing, sess: ServerSession, codecs: Mapping[str, Codec]) -> Outgoing:
    """``item``, encoded (cached) for the codec the session's writer uses (JSON while no
    connection carries it) unless it has been already, so that it has its ``size``: the
    session bounds its outbox in bytes. An ack encodes here, once, as the writer would."""
    if not item.size:
        link = sess.connection
        body(item, link.codec if isinstance(link, Link) else codecs["json"])
    return item
