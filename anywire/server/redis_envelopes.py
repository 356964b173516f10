"""Envelopes and history entries on the Redis wire, as the broker reads them.

The broker's half of :mod:`anywire.redis_wire` (which packs, and is shared with the
Publisher): the history read script, and turning what Redis returns (a channel message's
body, a stream entry's fields from redis-py or from Lua) back into an :class:`Envelope`.
"""

from __future__ import annotations

from typing import Any

from ..redis_wire import READ, loads, pack
from .broker import Envelope

__all__ = ["READ", "entry_field", "pack_envelope", "text", "unpack_envelope"]


def pack_envelope(env: Envelope) -> bytes:
    """``env``'s body as published and kept in history."""
    return pack(
        env.kind, env.namespace, env.target, env.event, env.data, env.skip, env.call, env.at
    )


def unpack_envelope(data: bytes) -> Envelope:
    """The inverse of :func:`pack_envelope` (its position is set by the caller)."""
    kind, ns, target, event, payload, skip, *rest = loads(data)
    call = (str(rest[0][0]), str(rest[0][1])) if rest and rest[0] else None
    at = rest[1] if len(rest) > 1 and isinstance(rest[1], int | float) else None
    return Envelope(kind, ns, target, event, payload, skip, call=call, at=at)


def entry_field(fields: Any, name: bytes) -> bytes:
    """A stream entry's field: a dict from redis-py's XRANGE, a flat list from Lua."""
    if isinstance(fields, dict):
        return bytes(fields[name])
    pairs = list(fields)
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i] == name:
            return bytes(pairs[i + 1])
    raise KeyError(name)


def text(value: bytes | str) -> str:
    """A reply value as text (redis-py returns bytes)."""
    return value.decode() if isinstance(value, bytes) else value
