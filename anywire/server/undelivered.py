"""The offline delivery hook: an event for a user none of whose devices is connected.

``@aw.on_undelivered`` registers ``hook(user, event)`` (plain or ``async``), called once
per user-targeted stream event (``emit(..., user=...)``, the publish API, a Publisher)
that finds **no live session** of its user, so the application can send a push
notification. The client still gets the event: it catches up from its stream position
when it comes back (a resume, or ``user_since`` on a fresh session).

**Live** means *a transport connection attached right now*. A session that is detached
and waiting within its resume window (the app went to the background, the network
dropped) is not live: that is exactly when a push is wanted. Events whose name starts
with ``$`` (the library's own) never call the hook.

**Across nodes** (Redis), every node receives the user's envelope, and exactly one calls
the hook: each node keeps, in the hash ``<prefix>:live:{<ns>}:<user>``, its count of the
user's attached connections (one field per node, ``HINCRBY`` at each attach and detach).
At delivery a node with an attached session of the user does nothing; every other node
runs one Lua script that looks for a positive count of another node whose heartbeat key
still lives (a crashed node's counts are ignored; a node's own field is ignored, since it
knows its sessions first-hand) and, finding none, elects itself with ``SET NX`` on
``<prefix>:undl:<stream>:<epoch>:<offset>``: the winner calls the hook.

Each node also lists the hashes it has a field in (``<prefix>:nlive:<node>``, a set
living as long as they do) and, when it starts, removes its own fields from them: a node
restarted after a crash **with the same fixed node id** (its heartbeat key then lives
again) would otherwise lend its old positive counts to users it no longer hosts: every
other node would defer to it for them until the counts expired. Random node ids (the default) never
meet their old fields (a dead node's are ignored through its heartbeat key).

Each outcome on this node (a hook called, a hook that raised, an event another node
won) is told to the observers (``Observer.undelivered``: the metrics and the connection
log) and counted in :attr:`Undelivered.counts`.

Races err on the side of calling (a spare push is harmless, a missed one is not): a
device whose count has not reached Redis yet when the event arrives gets a push too.
The one way to miss is two nodes each detaching the user's last device while the other
node's decrement is still in flight (milliseconds). With Redis unreachable a node that
hosts none of the user's connections calls the hook itself (possibly one call per node).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ..core.session import SessionState
from .broker import Envelope
from .errors import BrokerUnavailable
from .observe import Connection, Observer
from .redis_cluster_calls import is_cluster, mget

if TYPE_CHECKING:
    from .app import Anywire

__all__ = ["OUTCOMES", "Undelivered", "UndeliveredEvent"]

log = logging.getLogger("anywire")

_ATTACHED = SessionState.ATTACHED

# How long the election key of one event lives: longer than any node's delivery lag.
_ELECT_MS = 10 * 60 * 1000
# A user's live-count hash expires this long after its last change (counts of a node
# that never came back are also ignored at once through its heartbeat key).
_LIVE_TTL_MS = 24 * 3600 * 1000

# The most a start waits for Redis to forget this node's old counts (it goes on if not).
_CLEAR_WAIT = 5.0

# KEYS: live hash, election key. ARGV: alive key prefix, this node, election TTL (ms).
# 0: another node has the user connected. 1: nobody has, and this node won the
# election. 2: nobody has, and another node won it (it calls the hooks).
_DECIDE = """
local live = redis.call('HGETALL', KEYS[1])
for i = 1, #live, 2 do
  local node = live[i]
  if node ~= ARGV[2] and tonumber(live[i + 1]) > 0
     and redis.call('EXISTS', ARGV[1] .. node) == 1 then
    return 0
  end
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return 1 end
return 2
"""
_WON, _LOST = 1, 2


async def _decide_apart(redis: Any, keys: list[str], alive_prefix: str, node: str) -> int:
    """:data:`_DECIDE` on a Redis Cluster, where the live hash, the election key and
    the heartbeat keys are in different slots (one script may not touch them all): the
    reads first (a snapshot, as the script's was: a device connecting just after is
    missed either way), then the election (``SET NX``: still exactly one winner)."""
    live = await redis.hgetall(keys[0])
    others = [_str(n) for n, count in live.items() if _str(n) != node and int(count) > 0]
    flags = await mget(redis, [alive_prefix + n for n in others])
    if any(flag is not None for flag in flags):
        return 0
    return _WON if await redis.set(keys[1], b"1", nx=True, px=_ELECT_MS) else _LOST


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


OUTCOMES = ("called", "failed", "duplicate")
"""What became of an undelivered event on this node (``Observer.undelivered``, the
metrics ``undelivered_<outcome>``)."""


@dataclass(frozen=True, slots=True)
class UndeliveredEvent:
    """An event that reached none of its user's devices: what ``on_undelivered`` gets.

    ``stream``, ``epoch`` and ``offset`` are its position in the user's stream; the
    client catches up from there when it reconnects.
    """

    namespace: str
    event: str
    data: Any
    stream: str
    epoch: str
    offset: int


class Undelivered(Observer):
    """The hooks, and (with Redis) this node's share of who is connected."""

    def __init__(self, app: Anywire) -> None:
        self.app = app
        self.hooks: list[Callable[..., Any]] = []
        self._script: Any = None
        self.counts = {f"undelivered_{outcome}": 0 for outcome in OUTCOMES}
        """Hook outcomes on this node (the JSON metrics)."""

    def register(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook; the first one starts the bookkeeping (none without hooks)."""
        if not callable(fn):
            raise TypeError("on_undelivered needs a callable hook(user, event)")
        if not self.hooks:
            self.app.observe(self)
        self.hooks.append(fn)
        return fn

    async def start(self) -> None:
        """Remove this node's fields from the live counts it left in Redis (a restart
        with the same node id after a crash); nothing without hooks or without Redis."""
        cluster = self.app.cluster
        if not self.hooks or cluster is None:
            return
        redis, node = cluster.broker.redis, cluster.broker.node_id
        index = self._index_key()
        try:
            async with asyncio.timeout(_CLEAR_WAIT):
                keys = await redis.smembers(index)
                async with redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.hdel(key, node)
                    pipe.delete(index)
                    await pipe.execute()
        except (RedisError, OSError, BrokerUnavailable, TimeoutError):
            log.warning("anywire: old connection counts of node %s not cleared (Redis)", node)
            return
        if keys:
            log.info("anywire: cleared node %s's old counts of %d users", node, len(keys))

    # -- delivery -----------------------------------------------------------------------------
    def check(self, env: Envelope, targets: list[str]) -> None:
        """A user envelope is being delivered here to ``targets`` (the user's sessions on
        this node): unless one is attached, find out (across nodes) whether to call the
        hooks."""
        if not self.hooks or env.pos is None or env.event.startswith("$"):
            return
        sessions = self.app.host.sessions
        for sid in targets:
            sess = sessions.get(sid)
            if sess is not None and sess.state is _ATTACHED:
                return
        if self.app.cluster is None:
            self._call(env)
        else:
            self.app.host.spawn(self._decide(env))

    async def _decide(self, env: Envelope) -> None:
        cluster = self.app.cluster
        assert cluster is not None and env.pos is not None
        broker = cluster.broker
        stream, epoch, offset = env.pos
        keys = [self._live_key(env.namespace, env.target or ""),
                f"{broker.prefix}:undl:{stream}:{epoch}:{offset}"]  # fmt: skip
        try:
            if is_cluster(broker.redis):
                won = await _decide_apart(broker.redis, keys, broker.alive_key(""), broker.node_id)
            else:
                if self._script is None:
                    self._script = broker.redis.register_script(_DECIDE)
                won = await self._script(
                    keys=keys, args=[broker.alive_key(""), broker.node_id, _ELECT_MS]
                )
        except (RedisError, OSError, BrokerUnavailable):
            log.warning("anywire: Redis unreachable: on_undelivered called from this node")
            won = _WON
        if won == _WON:
            self._call(env)
        elif won == _LOST:
            self._tell("duplicate", env.namespace, env.target or "", env.event)

    def _call(self, env: Envelope) -> None:
        assert env.pos is not None
        stream, epoch, offset = env.pos
        info = UndeliveredEvent(env.namespace, env.event, env.data, stream, epoch, offset)
        for hook in self.hooks:
            self.app.host.spawn(self._run(hook, env.target or "", info))

    async def _run(self, hook: Callable[..., Any], user: str, info: UndeliveredEvent) -> None:
        try:
            result = hook(user, info)
            if inspect.isawaitable(result):
                await result
        except Exception:
            # The application's push failed: logged, delivery goes on.
            log.exception("on_undelivered hook failed for %r", info.event)
            self._tell("failed", info.namespace, user, info.event)
            return
        self._tell("called", info.namespace, user, info.event)

    def _tell(self, outcome: str, namespace: str, user: str, event: str) -> None:
        self.counts[f"undelivered_{outcome}"] += 1
        self.app.observers.undelivered(outcome, namespace, user, event)

    # -- who is connected (Redis only) ------------------------------------------------------
    def connected(self, conn: Connection, resumed: bool) -> None:
        self._count(conn, 1)

    def disconnected(
        self, conn: Connection, code: int, duration: float, frames_in: int, frames_out: int
    ) -> None:
        self._count(conn, -1)

    def _count(self, conn: Connection, delta: int) -> None:
        if conn.user is not None and self.app.cluster is not None:
            self.app.host.spawn(self._incr(self._live_key(conn.namespace, conn.user), delta))

    async def _incr(self, key: str, delta: int) -> None:
        cluster = self.app.cluster
        if cluster is None:
            return
        try:
            async with cluster.broker.redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(key, cluster.broker.node_id, delta)
                pipe.pexpire(key, _LIVE_TTL_MS)
                if delta > 0:  # listed for the clearing at a restart (start())
                    pipe.sadd(self._index_key(), key)
                    pipe.pexpire(self._index_key(), _LIVE_TTL_MS)
                await pipe.execute()
        except (RedisError, OSError, BrokerUnavailable):
            # Only another node's decision reads it, and it errs on calling the hook.
            log.warning("anywire: connection count of a user not shared (Redis down)")

    def _live_key(self, namespace: str, user: str) -> str:
        cluster = self.app.cluster
        assert cluster is not None
        return f"{cluster.broker.prefix}:live:{{{namespace}}}:{user}"

    def _index_key(self) -> str:
        cluster = self.app.cluster
        assert cluster is not None
        return f"{cluster.broker.prefix}:nlive:{cluster.broker.node_id}"
