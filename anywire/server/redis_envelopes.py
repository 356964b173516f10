"""Envelopes and history entries on the Redis wire, as the broker reads them.

The broker's half of :mod:`anywire.redis_wire` (which packs, and is shared with the
Publisher): the history read script, and turning what Redis returns (a channel message's
body, a stream entry's fields from redis-py or from Lua) back into an :class:`Envelope`.
"""

from __future__ import annotations

from typing import Any

from ..redis_wire import loads, pack
from .broker import Envelope

__all__ = ["READ", "entry_field", "pack_envelope", "text", "unpack_envelope"]

# KEYS: history, epoch, offset. ARGV: fresh epoch, epoch asked, after, ttl.
# The stream is created (its epoch chosen) if it does not exist, so a session that starts
# consuming it can be told its position. Returns {epoch, head, after, entries}: the entries
# after `after` if the epoch asked is current, else from the start of the current epoch.
READ = """
local ep = redis.call('GET', KEYS[2])
if not ep then
  ep = ARGV[1]
  redis.call('SET', KEYS[2], ep, 'EX', ARGV[4])
  redis.call('DEL', KEYS[1], KEYS[3])
end
local head = tonumber(redis.call('GET', KEYS[3]) or '0')
local after = 0
if ep == ARGV[2] then after = tonumber(ARGV[3]) end
local entries = {}
if after < head then
  entries = redis.call('XRANGE', KEYS[1], (after + 1) .. '-0', head .. '-0')
end
return {ep, head, after, entries}
"""


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
