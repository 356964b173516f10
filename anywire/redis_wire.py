"""The Redis wire format of a publish, shared by the Redis broker and the Publisher.

One place for what a publish writes to Redis: the publish script, the stream keys and
the packed envelope. :class:`~anywire.server.broker_redis.RedisBroker` (a node) and
:class:`~anywire.publisher.Publisher` (a process that runs no node) both build their
script call with :func:`publish_call`, so an event published from outside a node lands
on the same stream, with the same offsets, history and channel message, as a node's own.

Standard library, msgpack and the sans-I/O core only: importing it does not import the
server.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import msgpack

from .core.frames import StreamPos
from .errors import BrokerUnavailable

__all__ = [
    "PUBLISH",
    "PUBLISH_SHA",
    "READ",
    "PublishCall",
    "dumps",
    "loads",
    "pack",
    "publish_call",
    "publish_failed",
    "stream_channel",
    "stream_keys",
]

# KEYS: history, epoch, offset[, idempotency key]. ARGV: fresh epoch, maxlen, body, ttl,
# the stream's channel, idempotency window (ms). Returns {epoch, offset, repeated}.
PUBLISH = """
if KEYS[4] then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local sp = string.find(seen, ' ', 1, true)
    return {string.sub(seen, 1, sp - 1), tonumber(string.sub(seen, sp + 1)), 1}
  end
end
local ep = redis.call('GET', KEYS[2])
if not ep then
  ep = ARGV[1]
  redis.call('SET', KEYS[2], ep)
  redis.call('DEL', KEYS[1], KEYS[3])
end
local n = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], n .. '-0', 'd', ARGV[3])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
if KEYS[4] then redis.call('SET', KEYS[4], ep .. ' ' .. n, 'PX', ARGV[6]) end
redis.call('PUBLISH', ARGV[5], 'S' .. ep .. ' ' .. n .. ' ' .. ARGV[3])
return {ep, n, 0}
"""

PUBLISH_SHA = hashlib.sha1(PUBLISH.encode()).hexdigest()

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
"""The script's EVALSHA name (run with EVAL once when Redis does not have it yet)."""


def publish_failed(exc: BaseException, sent: bool) -> BrokerUnavailable:
    """The error for a publish that failed on Redis: ``sent`` says whether the script
    call had been written to Redis (then it may have run: ``maybe_published``)."""
    maybe = "may have been" if sent else "was not"
    return BrokerUnavailable(
        f"publish failed: Redis unavailable ({exc}); the event {maybe} published",
        maybe_published=sent,
    )


def dumps(value: Any) -> bytes:
    """MessagePack, as every pub/sub message between nodes is encoded."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def loads(data: bytes) -> Any:
    """The inverse of :func:`dumps`."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def stream_keys(prefix: str, stream: str) -> list[str]:
    """The Redis keys of ``stream``: history, epoch, offset. One hash tag per stream: its
    keys share a cluster slot."""
    base = f"{prefix}:{{{stream}}}"
    return [f"{base}:h", f"{base}:e", f"{base}:n"]


def stream_channel(prefix: str, stream: str) -> str:
    """The pub/sub channel of ``stream``'s events: only the nodes hosting a consumer of
    the stream subscribe to it (interest routing). Same hash tag as the stream's keys,
    so in Redis Cluster the publish script's (sharded) publish stays on their shard."""
    return f"{prefix}:{{{stream}}}:c"


def pack(
    kind: str,
    namespace: str,
    target: str | None,
    event: str,
    data: Any,
    skip: str | None = None,
    call: tuple[str, str] | None = None,
    at: float | None = None,
) -> bytes:
    """An envelope's body in history and on its channel (the broker unpacks it)."""
    fields = [kind, namespace, target, event, data, skip]
    if call is not None or at is not None:
        fields.append(None if call is None else list(call))
    if at is not None:
        fields.append(at)  # the publish time: delivery latency on every node
    return dumps(fields)


@dataclass(frozen=True, slots=True)
class PublishCall:
    """The arguments of one run of :data:`PUBLISH` (``EVALSHA sha len(keys) *keys
    *args``) and the stream it publishes on."""

    stream: str
    keys: list[str]
    args: list[Any]

    def position(self, result: Any) -> StreamPos:
        """The stream position from the script's reply ``{epoch, offset, repeated}``."""
        epoch, offset = result[0], result[1]
        return (self.stream, epoch.decode() if isinstance(epoch, bytes) else epoch, int(offset))


def publish_call(
    prefix: str,
    stream: str,
    body: bytes,
    key: str | None,
    *,
    history: int,
    ttl: int,
    idempotency_ms: int,
) -> PublishCall:
    """The script call that publishes ``body`` on ``stream`` (``key``: the idempotency
    key, if any). ``history``, ``ttl`` and ``idempotency_ms`` are the deployment's:
    the nodes' ``RedisBroker`` settings."""
    keys = stream_keys(prefix, stream)
    if key is not None:
        keys.append(f"{prefix}:{{{stream}}}:i:{key}")
    # A fresh epoch in case the stream does not exist yet (the script keeps the current).
    channel = stream_channel(prefix, stream)
    args = [secrets.token_hex(4), history, body, ttl, channel, idempotency_ms]
    return PublishCall(stream, keys, args)
