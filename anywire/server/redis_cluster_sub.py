"""Sharded pub/sub on a Redis Cluster: the ``Subscriber`` of the broker there.

A channel published with ``SPUBLISH`` reaches only the subscribers connected to the
shard that owns the channel's slot, so this subscriber keeps one connection per master
and ``SSUBSCRIBE``s each channel on the master owning its slot. One ``SSUBSCRIBE`` names
channels of one slot only (Redis refuses a cross-slot one): a batch of channels is
grouped by slot and written to each master as one pipelined write.

Channels move: a resharding moves a slot to another master, a failover promotes a
replica. Redis then tells the subscriber (a ``sunsubscribe`` it did not ask for, an error
such as ``MOVED`` in reply to ``SSUBSCRIBE``, or a closed connection); the channels
concerned are placed again from a refreshed slot map, and once Redis confirmed them
``on_resubscribed`` names them, so the broker probes those streams' heads and fills
what was published while nobody listened (pub/sub itself is at-most-once). A master
that stops answering (SIGSTOP, a network partition) is found by a ``PING`` every
``health`` seconds on each connection.

The interface is the broker's ``Subscriber`` protocol (``redis_sub.py``): channels are
``str``; messages arrive as ``(channel: bytes, data: bytes)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError, ResponseError

from .redis_sub import ignore_list, ignore_message, ignore_state
from .tasks import cancel_and_wait

__all__ = ["ClusterSubscriber"]

log = logging.getLogger("anywire.redis")

OnMessage = Callable[[bytes, bytes], None]
OnResubscribed = Callable[[list[str]], None]
OnState = Callable[[str], None]


class _Shard:
    """One connection to one master and the channels subscribed on it."""

    def __init__(self, owner: ClusterSubscriber, node: ClusterNode) -> None:
        self.owner = owner
        self.name = node.name
        kwargs = {**node.connection_kwargs, "socket_timeout": None}
        kwargs.setdefault("socket_connect_timeout", owner.connect_timeout)
        self.conn: Connection = node.connection_class(**kwargs)
        self.channels: set[str] = set()  # confirmed here
        # Commands written and not yet answered, in order: (verb, channels still due).
        self.inflight: deque[tuple[str, list[str]]] = deque()
        self.pongs = 0
        self.reader: asyncio.Task[None] | None = None
        self.pinger: asyncio.Task[None] | None = None
        self.closed = False

    async def open(self) -> None:
        await self.conn.connect()  # type: ignore[no-untyped-call]
        self.reader = asyncio.create_task(self._read(), name=f"anywire-ssub-{self.name}")
        self.pinger = asyncio.create_task(self._ping(), name=f"anywire-ssub-ping-{self.name}")

    async def send(self, verb: str, by_slot: dict[int, list[str]]) -> None:
        """One command per slot, written at once (one pipelined write)."""
        commands = [(verb, *chans) for chans in by_slot.values()]
        for chans in by_slot.values():
            self.inflight.append((verb, list(chans)))
        await self.conn.send_packed_command(self.conn.pack_commands(commands))

    async def _read(self) -> None:
        try:
            while True:
                try:
                    reply = await self.conn.read_response(timeout=math.inf, push_request=True)
                except ResponseError as exc:
                    # The oldest command still due failed as a whole (MOVED, ASK,
                    # CLUSTERDOWN, TRYAGAIN): its channels are placed again.
                    if self.inflight:
                        verb, chans = self.inflight.popleft()
                        if verb == "SSUBSCRIBE":
                            self.owner._misplaced(chans, str(exc))
                    continue
                self._on_reply(reply)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            self.owner._shard_lost(self, exc)
        except Exception as exc:  # a bug must not leave the channels unread silently
            log.exception("anywire: cluster subscriber reader failed")
            self.owner._shard_lost(self, exc)

    def _on_reply(self, reply: Any) -> None:
        kind = reply[0]
        if kind == b"smessage":
            self.owner.on_message(reply[1], reply[2])
        elif kind == b"ssubscribe":
            channel = reply[1].decode()
            self._due("SSUBSCRIBE", channel)
            self.channels.add(channel)
            self.owner._confirmed(self, channel)
        elif kind == b"sunsubscribe":
            channel = reply[1].decode()
            asked = self._due("SUNSUBSCRIBE", channel)
            self.channels.discard(channel)
            if not asked:
                # Redis dropped it: its slot moved (resharding, failover, demotion).
                self.owner._misplaced([channel], "slot moved")
        elif kind == b"pong" or reply == b"PONG":
            self.pongs += 1
            self._due("PING", "")

    def _due(self, verb: str, channel: str) -> bool:
        """Count ``channel``'s reply to the oldest ``verb`` still due; False if none
        was due (a push Redis sent on its own)."""
        for i, (v, chans) in enumerate(self.inflight):
            if v == verb and channel in chans:
                chans.remove(channel)
                if not chans:
                    del self.inflight[i]
                return True
        return False

    async def _ping(self) -> None:
        """A master that stops answering is only found by asking."""
        health = self.owner.health
        while True:
            await asyncio.sleep(health)
            before = self.pongs
            try:
                self.inflight.append(("PING", [""]))
                await self.conn.send_command("PING")
            except (RedisError, OSError) as exc:
                self.owner._shard_lost(self, exc)
                return
            await asyncio.sleep(health)
            if self.pongs == before:
                self.owner._shard_lost(self, TimeoutError(f"no PONG within {2 * health} s"))
                return

    async def close(self) -> None:
        self.closed = True
        current = asyncio.current_task()
        for task in (self.reader, self.pinger):
            if task is not None and task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.conn.disconnect()


class ClusterSubscriber:
    """``SSUBSCRIBE`` on the masters of a Redis Cluster (see the module docstring).

    :param cluster: the broker's ``RedisCluster`` command client (its slot map is used
        and refreshed; its connections are not).
    :param timeout: how long :meth:`subscribe` waits for Redis to confirm.
    :param health: seconds between the ``PING`` s that find a master gone silent.
    """

    def __init__(
        self,
        cluster: RedisCluster,
        *,
        timeout: float = 10.0,
        health: float = 2.0,
        connect_timeout: float = 2.0,
        backoff_max: float = 1.0,
    ) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.health = health
        self.connect_timeout = connect_timeout
        self.backoff_max = backoff_max
        self.on_message: OnMessage = ignore_message
        self._on_resubscribed: OnResubscribed = ignore_list
        self._on_state: OnState = ignore_state
        self._wanted: set[str] = set()
        self._where: dict[str, _Shard] = {}  # channel -> the shard it is placed on
        self._shards: dict[str, _Shard] = {}  # node name -> shard
        self._orphans: set[str] = set()  # wanted, placed nowhere: to place again
        self._again: set[str] = set()  # confirmed once, then lost: report when back
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._back: list[str] = []  # confirmed again, to report (see _report)
        self._wake = asyncio.Event()
        self._stale = False  # the slot map needs refreshing before the next placement
        self._placer: asyncio.Task[None] | None = None
        self._state = "down"
        self._tasks: set[asyncio.Future[Any]] = set()
        self.counters = {"resubscribed": 0, "moved": 0, "shard_lost": 0}

    # -- Subscriber protocol ---------------------------------------------------------------
    async def start(
        self, on_message: OnMessage, on_resubscribed: OnResubscribed, on_state: OnState
    ) -> None:
        """Load the slot map and start placing channels."""
        self.on_message, self._on_resubscribed, self._on_state = (
            on_message, on_resubscribed, on_state
        )  # fmt: skip
        await self.cluster.initialize()
        self._placer = asyncio.create_task(self._place_loop(), name="anywire-ssub-placer")
        self._set_state("ok")

    async def subscribe(self, channels: Iterable[str]) -> None:
        """Returns once Redis confirmed every channel (``ConnectionError`` if it could
        not within ``timeout``; the channels stay wanted and are placed later)."""
        loop = asyncio.get_running_loop()
        waits = []
        for channel in channels:
            if channel in self._wanted and channel not in self._waiters:
                continue
            if channel not in self._wanted:
                self._wanted.add(channel)
                self._orphans.add(channel)
            fut = self._waiters.get(channel)
            if fut is None:
                fut = self._waiters[channel] = loop.create_future()
            waits.append(fut)
        if not waits:
            return
        self._wake.set()
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*(asyncio.shield(w) for w in waits))
        except TimeoutError as exc:
            raise ConnectionError("Redis Cluster did not confirm the subscriptions") from exc

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        """Stop receiving ``channels`` (not waited for: late messages are possible)."""
        by_shard: dict[_Shard, dict[int, list[str]]] = {}
        for channel in channels:
            self._wanted.discard(channel)
            self._orphans.discard(channel)
            self._again.discard(channel)
            fut = self._waiters.pop(channel, None)
            if fut is not None and not fut.done():
                fut.cancel()
            shard = self._where.pop(channel, None)
            if shard is not None and not shard.closed:
                slot = self.cluster.keyslot(channel)
                by_shard.setdefault(shard, {}).setdefault(slot, []).append(channel)
        for shard, by_slot in by_shard.items():
            with contextlib.suppress(RedisError, OSError):
                await shard.send("SUNSUBSCRIBE", by_slot)

    async def stop(self) -> None:
        placer, self._placer = self._placer, None
        await cancel_and_wait(placer)
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()
        self._where.clear()
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    def channels(self) -> set[str]:
        """The channels wanted (subscribed, or being placed again)."""
        return set(self._wanted)

    def placed(self) -> dict[str, str]:
        """channel -> the master (``host:port``) it is confirmed on (tests, admin)."""
        return {ch: shard.name for ch, shard in self._where.items() if ch in shard.channels}

    # -- events from the shards ------------------------------------------------------------
    def _confirmed(self, shard: _Shard, channel: str) -> None:
        if channel not in self._wanted:
            # Unsubscribed while its SSUBSCRIBE was on its way.
            slot = self.cluster.keyslot(channel)
            self._spawn(_quietly(shard.send("SUNSUBSCRIBE", {slot: [channel]})))
            return
        self._where[channel] = shard
        fut = self._waiters.pop(channel, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        if channel in self._again:
            self._again.discard(channel)
            self.counters["resubscribed"] += 1
            if not self._back:
                # Once per loop turn: a master's thousands of confirmations, read in
                # one go, become one report (one probe batch in the broker).
                asyncio.get_running_loop().call_soon(self._report)
            self._back.append(channel)
        if not self._orphans and not self._again:
            self._set_state("ok")

    def _report(self) -> None:
        back, self._back = self._back, []
        if back:
            self._on_resubscribed(back)

    def _misplaced(self, channels: list[str], why: str) -> None:
        self.counters["moved"] += len(channels)
        log.info("anywire: %d shard channel(s) to place again (%s)", len(channels), why)
        for channel in channels:
            if channel not in self._wanted:
                continue
            shard = self._where.pop(channel, None)
            if shard is not None:
                shard.channels.discard(channel)
            if channel not in self._waiters:
                self._again.add(channel)
            self._orphans.add(channel)
        self._stale = True
        self._wake.set()

    def _shard_lost(self, shard: _Shard, exc: BaseException) -> None:
        if shard.closed:
            return
        self.counters["shard_lost"] += 1
        log.warning("anywire: Redis Cluster node %s lost (%s); resubscribing", shard.name, exc)
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
        lost = [ch for ch, where in self._where.items() if where is shard]
        lost += [ch for _, chans in shard.inflight for ch in chans if ch]
        self._spawn(shard.close())
        if lost:
            self._set_state("down")
        self._misplaced(sorted(set(lost)), f"node {shard.name} lost")

    # -- placing -----------------------------------------------------------------------------
    async def _place_loop(self) -> None:
        delay = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._orphans:
                continue
            try:
                if self._stale:
                    self._stale = False
                    await self.cluster.nodes_manager.initialize()
                await self._place(sorted(self._orphans))
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: refresh, back off, retry
                log.info("anywire: placing shard channels failed (%s); retrying", exc)
                self._stale = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                self._wake.set()

    async def _place(self, channels: list[str]) -> None:
        by_node: dict[str, tuple[ClusterNode, dict[int, list[str]]]] = {}
        for channel in channels:
            slot = self.cluster.keyslot(channel)
            node = self.cluster.nodes_manager.get_node_from_slot(slot)
            by_node.setdefault(node.name, (node, {}))[1].setdefault(slot, []).append(channel)
        failed: Exception | None = None
        for name, (node, by_slot) in by_node.items():
            try:
                shard = self._shards.get(name)
                if shard is None:
                    shard = _Shard(self, node)
                    async with asyncio.timeout(self.connect_timeout):
                        await shard.open()
                    self._shards[name] = shard
                for chans in by_slot.values():
                    for channel in chans:
                        self._orphans.discard(channel)
                        self._where[channel] = shard
                await shard.send("SSUBSCRIBE", by_slot)
            except (RedisError, OSError, TimeoutError) as exc:
                failed = exc
                for chans in by_slot.values():
                    for channel in chans:
                        self._where.pop(channel, None)
                        if channel in self._wanted:
                            self._orphans.add(channel)
        if failed is not None:
            raise failed

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._on_state(state)


async def _quietly(coro: Any) -> None:
    with contextlib.suppress(RedisError, OSError):
        await coro
