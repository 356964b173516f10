"""Variants of the publish and read scripts for a replicated Redis (Sentinel, Cluster).

:data:`~anywire.redis_wire.PUBLISH` is left as it is (one server); this module derives
from it the forms a deployment with failover needs, chosen by :func:`publish_script`:

- **stamped** (Sentinel and Cluster URLs): Redis replicates asynchronously, so a
  promoted replica may lack the last acknowledged publishes of a stream. Its offset
  counter is then behind: the next publishes would reuse offsets that clients and nodes
  have already seen with other events, and be dropped as duplicates, silently. So each
  stream keeps a stamp, the ``master_replid`` of the primary that last published on it
  (``INFO replication``; a promotion gives the new primary a new one). A publish that
  finds a stamp other than its server's starts a **new epoch** (history and counter
  reset): every node and client then reports ``$lost`` after its position, the
  documented answer to "Redis may have lost acknowledged writes". A failover that lost
  nothing costs the same ``$lost`` (the script cannot tell), once per stream published
  after it.
- **sharded**: ``SPUBLISH`` instead of ``PUBLISH`` for the channel (a Redis Cluster with
  per-stream channels, whose hash tag is the stream's: the script's keys and its channel
  share a slot; the routing branch's channel ``{prefix}:{{stream}}:c``).

Keys of a stamped call: history, epoch, offset, **stamp** [, idempotency key]; the
arguments are :func:`~anywire.redis_wire.publish_call`'s. :func:`stamped_call` makes
them from a ``PublishCall``.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from typing import Any

from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)

from .redis_wire import PUBLISH, PublishCall, publish_failed
from .redis_wire import READ as WIRE_READ

__all__ = [
    "READ",
    "Script",
    "cluster_script",
    "is_user_stream",
    "publish_script",
    "run_on_cluster",
    "run_on_cluster_sync",
    "stamp_key",
    "stamped_call",
]

_STAMP_CHECK = """
local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
local ep = redis.call('GET', KEYS[2])
if ep and redis.call('GET', KEYS[4]) ~= rid then
  -- Another primary than the one that last published here (a failover): what it
  -- acknowledged may be missing, so the old offsets cannot be trusted: a new epoch.
  ep = false
end
if not ep then
  ep = ARGV[1]
  redis.call('SET', KEYS[2], ep)
  redis.call('DEL', KEYS[1], KEYS[3])
end
redis.call('SET', KEYS[4], rid)
"""


class Script:
    """A script's text and its ``EVALSHA`` name."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


def _variant(*, sharded: bool, stamped: bool) -> str:
    text = PUBLISH
    if stamped:
        # The idempotency key moves to KEYS[5]; the stamp takes KEYS[4].
        text = _swap(text, "KEYS[4]", "KEYS[5]")
        head = text.index("local ep = redis.call('GET', KEYS[2])")
        tail = text.index("local n = redis.call('INCR', KEYS[3])")
        text = text[:head] + _STAMP_CHECK.lstrip("\n") + text[tail:]
        text = _swap(text, "for i = 1, 3 do", "for i = 1, 4 do")
    if sharded:
        text = _swap(text, "redis.call('PUBLISH', ARGV[5]", "redis.call('SPUBLISH', ARGV[5]")
    return text


def _swap(text: str, old: str, new: str) -> str:
    """Replace ``old``, which must be there: an edit of PUBLISH or READ that moves a line these
    variants rewrite fails at import, not silently in production."""
    if old not in text:
        raise RuntimeError(f"redis_wire.PUBLISH changed: {old!r} not found (redis_scripts.py)")
    return text.replace(old, new)


_SCRIPTS = {
    (sharded, stamped): Script(_variant(sharded=sharded, stamped=stamped))
    for sharded in (False, True)
    for stamped in (False, True)
}


def publish_script(*, sharded: bool = False, stamped: bool = False) -> Script:
    """The publish script for a deployment (``(False, False)`` is ``PUBLISH`` itself)."""
    return _SCRIPTS[(sharded, stamped)]


def is_user_stream(stream: str) -> bool:
    """Whether ``stream`` is a user's stream. On a cluster those go out by plain
    ``PUBLISH`` (the cluster bus carries it to every cluster node), not ``SPUBLISH``:
    a node with an ``on_undelivered`` hook reads every user stream through one pattern
    subscription (``PSUBSCRIBE``), which sharded pub/sub does not have
    (:mod:`anywire.server.redis_wiring`)."""
    return stream.startswith("user:")


def cluster_script(call: PublishCall) -> Script:
    """The publish script of ``call`` on a Redis Cluster: stamped, and sharded
    (``SPUBLISH``) unless its stream is a user's (:func:`is_user_stream`). Nodes and
    Publishers must agree on this, or nobody receives what is published."""
    return _SCRIPTS[(not is_user_stream(call.stream), True)]


def stamp_key(prefix: str, stream: str) -> str:
    """The key holding the ``master_replid`` that last published on ``stream``."""
    return f"{prefix}:{{{stream}}}:r"


def stamped_call(call: PublishCall, prefix: str, channel: str | None = None) -> PublishCall:
    """``call`` for a stamped script: the stamp key inserted as KEYS[4] (and the
    channel replaced, for the routing branch's per-stream channels)."""
    keys = [*call.keys[:3], stamp_key(prefix, call.stream), *call.keys[3:]]
    args = list(call.args)
    if channel is not None:
        args[4] = channel
    return replace(call, keys=keys, args=args)


# KEYS: history, epoch, offset, stamp. ARGV: fresh epoch, epoch asked, after, ttl.
# broker_redis's read script, stamping a stream it creates (so that a stream created by
# a read and published on by a primary that failed is told apart from one never published).
READ = Script(
    _swap(
        WIRE_READ,
        "  redis.call('DEL', KEYS[1], KEYS[3])\n",
        "  redis.call('DEL', KEYS[1], KEYS[3])\n"
        "  local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')\n"
        "  redis.call('SET', KEYS[4], rid, 'EX', ARGV[4])\n",
    )
)


# Replies with which a master refused a call without running it: the connection is fine.
_REFUSALS = (AskError, TryAgainError, ClusterDownError)


def _follow(exc: BaseException, sent: bool) -> tuple[str, int] | None:
    """What a failed attempt on a cluster says to do next (both runners' one decision):
    ``None`` to refresh the slot map and try again (``MOVED``: the call did not run; our
    map is old), ``(host, port)`` of the importing master to ask (``ASK``); anything else
    raises :func:`~anywire.redis_wire.publish_failed` (``TRYAGAIN``/``CLUSTERDOWN``: not
    published; a failed connection: published if ``sent``)."""
    if isinstance(exc, MovedError):  # before AskError: a subclass of it
        return None
    if isinstance(exc, AskError):
        return (exc.host, exc.port)
    if isinstance(exc, (TryAgainError, ClusterDownError)):
        raise publish_failed(exc, sent=False) from exc
    raise publish_failed(exc, sent) from exc


def _packed(
    conn: Any, asking: Any, verb: str, script: Script, keys: list[str], args: list[Any]
) -> tuple[Any, int]:
    """The packed call (``ASKING`` first when following an ``ASK``) and how many replies
    it gets: the last one is the script's."""
    call = (verb, script.sha if verb == "EVALSHA" else script.text, len(keys), *keys, *args)
    if asking is None:
        return conn.pack_command(*call), 1
    return conn.pack_commands([("ASKING",), call]), 2


async def run_on_cluster(
    client: Any, script: Script, keys: list[str], args: list[Any], attempts: int = 3
) -> list[Any]:
    """Run the publish ``script`` on the master of its keys' slot through an asyncio
    ``RedisCluster``, on one of that master's connections.

    Not through ``client.evalsha()``: redis-py retries a command whose connection failed,
    even after Redis ran it, which could publish an event twice. Here, as on one Redis,
    a failure says whether the call was written (``maybe_published``). What Redis refused
    without running (``MOVED``, ``ASK``, a missing script) is followed here, at most
    ``attempts`` times; ``TRYAGAIN``/``CLUSTERDOWN`` (a slot being moved or without a
    master) fail as not published (:func:`_follow`)."""
    asking: Any = None  # the importing master named by an ASK
    for _ in range(attempts):
        try:
            await client.initialize()  # the slot map (once; a no-op afterwards)
            node = asking or client.get_node_from_key(keys[0])
        except (RedisError, RedisClusterException, OSError) as exc:
            # No master for the slot (failing over), or no node reachable.
            raise publish_failed(exc, sent=False) from exc
        if node is None:
            raise publish_failed(ConnectionError("no master for the slot"), sent=False)
        conn = node.acquire_connection()
        sent = False
        try:
            await conn.connect()  # a refused connection: certainly not published
            sent = True
            for verb in ("EVALSHA", "EVAL"):  # EVAL: this master has not seen the script
                packed, replies = _packed(conn, asking, verb, script, keys, args)
                await conn.send_packed_command(packed)
                try:
                    for _ in range(replies - 1):
                        await conn.read_response()  # ASKING's OK
                    return list(await conn.read_response())
                except NoScriptError:
                    continue
        except (RedisError, OSError) as exc:
            if not isinstance(exc, _REFUSALS):
                with contextlib.suppress(Exception):
                    await conn.disconnect()
            target = _follow(exc, sent)
            asking = None if target is None else client.get_node(host=target[0], port=target[1])
            if asking is None:
                await client.nodes_manager.initialize()
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.disconnect()  # cancelled mid-command: state unknown
            raise
        finally:
            node.release(conn)
    raise publish_failed(ConnectionError("the slot kept moving"), sent=False)


def run_on_cluster_sync(
    client: Any, script: Script, keys: list[str], args: list[Any], attempts: int = 3
) -> list[Any]:
    """:func:`run_on_cluster` for a synchronous ``redis.cluster.RedisCluster`` (the
    WSGI publisher): the same calls, the same decisions (:func:`_follow`)."""
    asking: Any = None
    for _ in range(attempts):
        try:
            node = asking or client.get_node_from_key(keys[0])
        except (RedisError, RedisClusterException, OSError) as exc:
            raise publish_failed(exc, sent=False) from exc
        if node.redis_connection is None:
            client.nodes_manager.initialize()
            continue
        pool = node.redis_connection.connection_pool
        try:
            conn = pool.get_connection()
        except (RedisError, OSError) as exc:
            raise publish_failed(exc, sent=False) from exc
        sent = False
        try:
            conn.connect()
            sent = True
            for verb in ("EVALSHA", "EVAL"):
                packed, replies = _packed(conn, asking, verb, script, keys, args)
                conn.send_packed_command(packed)
                try:
                    for _ in range(replies - 1):
                        conn.read_response()
                    return list(conn.read_response())
                except NoScriptError:
                    continue
        except (RedisError, OSError) as exc:
            if not isinstance(exc, _REFUSALS):
                conn.disconnect()
            target = _follow(exc, sent)
            asking = None if target is None else client.get_node(host=target[0], port=target[1])
            if asking is None:
                client.nodes_manager.initialize()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
    raise publish_failed(ConnectionError("the slot kept moving"), sent=False)
