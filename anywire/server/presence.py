"""Presence across nodes, in Redis: who is in each room, and who is told when it changes.

Per room a hash ``<prefix>:pres:{<ns>:<room>}``: one field per session id, valued
``[user, meta, node, incarnation]``; each node lists its entries in ``npres:<node>`` so a
dead node's can be removed. A session keeps its sid when it moves to another node (or
starts afresh after a lost session), so the *incarnation* (one per session object) tells
the copies apart. Every change is one Lua script that decides, atomically, whether the
others are told:

* **join**: ``$join`` only if the sid was not present at all; a session that moved and
  enters its rooms again on its new node takes its entry over silently, and joining again
  only replaces the meta;
* **leave**: ``$leave`` only if the entry is still this incarnation's; the leave of a copy
  that moved away announces nothing;
* **reap**: a dead node's entries are removed (with ``$leave``) only if still its own.

A session that moved away leaves its entries for its next incarnation to take over, and
its leave is checked again after the resume window (announced then if nobody took them).
One node's changes are applied in order (one worker); local members hear of a change
when Redis has decided it, like every other node's members. With Redis unreachable a
change is announced on this node only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
from redis.exceptions import RedisError

from ..core.rooms import Member
from .broker import Envelope
from .errors import BrokerUnavailable
from .redis_cluster_calls import is_cluster, mget

if TYPE_CHECKING:
    from .broker_redis import RedisBroker
    from .host import SessionHost

__all__ = ["Presence"]

log = logging.getLogger("anywire.cluster")

# KEYS: pres hash, node set. ARGV: sid, value, entry. 1: announce (the sid was absent).
_JOIN = """
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if prev then return 0 end
return 1
"""

# KEYS: pres hash, node set. ARGV: sid, entry, incarnation. The removed value: announce.
_LEAVE = """
redis.call('SREM', KEYS[2], ARGV[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return false end
if cmsgpack.unpack(cur)[4] ~= ARGV[3] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return cur
"""

# The same on a cluster, where the node set is written apart (KEYS: pres hash).
_JOIN_ROOM = _JOIN.replace("redis.call('SADD', KEYS[2], ARGV[3])\n", "")
_LEAVE_ROOM = _LEAVE.replace("redis.call('SREM', KEYS[2], ARGV[2])\n", "")

# KEYS: pres hash. ARGV: sid, dead node. The removed value: announce.
_REAP = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return false end
if cmsgpack.unpack(cur)[3] ~= ARGV[2] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
return cur
"""


@dataclass(frozen=True, slots=True)
class _Change:
    env: Envelope
    member: Member
    incarnation: str


class Presence:
    """This node's side of cluster presence."""

    def __init__(self, host: SessionHost, broker: RedisBroker) -> None:
        self.host = host
        self.broker = broker
        self.node = broker.node_id
        self._queue: deque[_Change] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._later: dict[asyncio.TimerHandle, _Change] = {}
        self._scripts: dict[str, Any] = {}

    def key(self, ns: str, room: str) -> str:
        return f"{self.broker.prefix}:pres:{{{ns}:{room}}}"

    def node_key(self, node: str) -> str:
        return f"{self.broker.prefix}:npres:{node}"

    # -- changes, in order ------------------------------------------------------------------
    def change(self, env: Envelope, member: Member, incarnation: str) -> None:
        """A local ``$join``/``$leave`` of ``member``: decide it in Redis, then tell."""
        self._queue.append(_Change(env, member, incarnation))
        self._idle.clear()
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work())

    def leave_later(self, env: Envelope, member: Member, incarnation: str, delay: float) -> None:
        """The session moved away: leave its entry to its next incarnation, and check
        after ``delay`` whether one took it (else the leave is announced then)."""
        change = _Change(env, member, incarnation)
        handle = asyncio.get_running_loop().call_later(delay, self._due, change)
        self._later[handle] = change

    def _due(self, change: _Change) -> None:
        for handle, pending in list(self._later.items()):
            if pending is change:
                del self._later[handle]
        self.change(change.env, change.member, change.incarnation)

    async def drain(self, timeout: float) -> None:
        """Apply every pending change now (those waiting for a moved session's next
        incarnation too), bounded."""
        for handle, change in list(self._later.items()):
            handle.cancel()
            self.change(change.env, change.member, change.incarnation)
        self._later.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        worker, self._worker = self._worker, None
        if worker is not None:
            # Stopped by being no longer the worker as well as by cancel: a cancellation
            # swallowed inside the Redis client once left this loop waiting for ever, and
            # the process with it (asyncio.run waits for every task it cancels).
            self._wake.set()
            worker.cancel()
            await asyncio.wait({worker}, timeout=max(timeout / 2, 0.05))

    async def _work(self) -> None:
        me = asyncio.current_task()
        while self._worker is me:
            while self._queue:
                change = self._queue.popleft()
                try:
                    await self._apply(change)
                except Exception:
                    log.exception("anywire: presence change failed")
            self._idle.set()
            self._wake.clear()
            if self._worker is not me:
                break
            await self._wake.wait()

    async def _apply(self, change: _Change) -> None:
        env, member = change.env, change.member
        room = env.target or ""
        entry = f"{env.namespace}\n{room}\n{member.sid}"
        keys = [self.key(env.namespace, room), self.node_key(self.node)]
        try:
            # Inside the try: a stopped broker (a graceful stop whose bounded drain did
            # not get through the queue) is Redis down too, not a traceback per change.
            redis = self.broker.redis
            # On a cluster the room's hash and this node's set are in two slots: the set
            # is written apart, listed before the join and unlisted after the leave (a
            # crash between leaves an entry the reaper finds nothing for: harmless).
            split = is_cluster(redis)
            if env.event == "$join":
                value = _pack(member, self.node, change.incarnation)
                if split:
                    await redis.sadd(keys[1], entry)
                    joined = await self._run(_JOIN_ROOM, keys[:1], [member.sid, value])
                else:
                    joined = await self._run(_JOIN, keys, [member.sid, value, entry])
                announce = bool(joined)
            else:
                args = [member.sid, entry, change.incarnation]
                if split:
                    removed = await self._run(_LEAVE_ROOM, keys[:1], args)
                    await redis.srem(keys[1], entry)
                else:
                    removed = await self._run(_LEAVE, keys, args)
                announce = removed is not None
        except (RedisError, OSError, BrokerUnavailable):
            if not self.host.closing:
                log.warning("anywire: presence %s of %s not shared (Redis down)", env.event, room)
            self.host.deliver(env)
            return
        if announce:
            self.host.deliver(env)
            with contextlib.suppress(RedisError, OSError, BrokerUnavailable):
                await self.broker.publish_volatile(env)

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        runner = self._scripts.get(script)
        if runner is None:
            runner = self._scripts[script] = self.broker.redis.register_script(script)
        return await runner(keys=keys, args=args)

    # -- queries ----------------------------------------------------------------------------
    async def members(
        self, namespace: str, room: str, alive: dict[str, bool] | None = None
    ) -> list[tuple[str, Any, Any, str]]:
        """``(sid, user, meta, node)`` of every member of ``room`` whose node lives."""
        redis = self.broker.redis
        raw = await redis.hgetall(self.key(namespace, room))
        entries = [(_text(f), *msgpack.unpackb(v, raw=False)) for f, v in raw.items()]
        nodes = sorted({e[3] for e in entries} - {self.node})
        if nodes and alive is None:
            flags = await mget(redis, [self.broker.alive_key(n) for n in nodes])
            alive = {n: f is not None for n, f in zip(nodes, flags, strict=True)}
        known = {**(alive or {}), self.node: True}
        return [(sid, user, meta, node) for sid, user, meta, node, *_ in sorted(entries)
                if known.get(node)]  # fmt: skip

    async def reap(self, node: str) -> int:
        """Remove dead ``node``'s entries still its own, announcing each leave."""
        redis = self.broker.redis
        entries = [_text(e) for e in await redis.smembers(self.node_key(node))]
        removed = 0
        for entry in entries:
            ns, room, sid = entry.split("\n", 2)
            value = await self._run(_REAP, [self.key(ns, room)], [sid, node])
            if value is None:
                continue  # taken over by the session's next incarnation, or left
            removed += 1
            user, meta, *_ = msgpack.unpackb(value, raw=False)
            data = {"room": room, "sid": sid, "user": user, "meta": meta}
            env = Envelope("room", ns, room, "$leave", data, skip=sid)
            self.host.deliver(env)
            await self.broker.publish_volatile(env)
        await redis.delete(self.node_key(node))
        return removed


def _pack(member: Member, node: str, incarnation: str) -> bytes:
    return msgpack.packb(  # type: ignore[no-any-return]
        [member.user, member.meta, node, incarnation], use_bin_type=True
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
