"""The Redis broker: fan-out between nodes, with per-stream offsets and history in Redis.

One publish is one Lua script (``EVALSHA``): ``INCR`` the stream's offset, ``XADD`` the
envelope to the stream's history (``MAXLEN ~ history``, entry id ``<offset>-0``) and
``PUBLISH`` it with its position on the stream's own channel, atomically. A node
subscribes to the channels of the streams its sessions consume (:mod:`.routing`: it
subscribes before a session's catch-up reads history) and hands what arrives to its
``deliver`` callback, the publishing node included, so one node and many share a single
delivery path. Pub/sub is read by :mod:`.redis_sub`. Publishes made together go to Redis
as one pipeline (:mod:`anywire.redis_batch`).

Pub/sub is at-most-once (messages vanish during reconnects), so each node runs the
arrivals through :class:`~anywire.core.gaps.GapTracker`: a skipped offset is fetched from
the stream with ``XRANGE`` before later ones are delivered; what history no longer holds
becomes a ``$lost`` event to the affected local sessions. After a reconnect every tracked
stream resubscribed has its head probed the same way. Key layout, memory bounds and guarantees:
``docs/scaling.md``.

The broker also carries node-to-node requests (:meth:`request`) on per-node channels, a
node heartbeat and the session owner registry used by :mod:`.cluster`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..core.frames import StreamPos
from ..core.gaps import Fill, GapTracker, Lost, Step
from ..core.streams import StreamRead
from ..redis_batch import PublishBatcher
from ..redis_connect import command_client, detect, parse
from ..redis_scripts import READ as STAMPED_READ
from ..redis_scripts import cluster_script, is_user_stream, publish_script, stamp_key, stamped_call
from ..redis_wire import (
    dumps,
    loads,
    publish_call,
    stream_channel,
    stream_keys,
)
from .broker import Envelope, stream_of
from .errors import BrokerUnavailable
from .redis_envelopes import READ, entry_field, pack_envelope, text, unpack_envelope
from .redis_sub import Subscriber
from .redis_wiring import make_subscriber
from .routing import Routes

__all__ = ["RedisBroker"]

log = logging.getLogger("anywire.redis")

_POOL_SIZE = 200  # command connections per node
_POOL_WAIT = 2.0  # seconds a command waits for one before it fails (BrokerUnavailable)

Rpc = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RedisBroker:
    """Scale-out broker on redis-py asyncio.

    :param url: ``redis://host:port/db``, ``rediss://``, ``redis+sentinel://``,
        ``redis+cluster://`` (:mod:`anywire.redis_connect`; a bad URL raises
        :class:`~anywire.redis_connect.RedisURLError` here).
    :param history: entries kept per stream (``XADD MAXLEN ~``: Redis may keep a few more).
    :param stream_ttl: seconds a stream's keys live after its last publish.
    :param prefix: key and channel prefix (several deployments can share one Redis).
    :param heartbeat: node heartbeat period; a node missing for 3 heartbeats is dead.
    :param max_streams: streams each node tracks for gap detection.
    :param idempotency_window: seconds an ``emit(..., id=...)`` key is remembered per
        stream (a retry within it is not published again).
    :param linger: seconds a stream stays subscribed after its last local consumer left
        (a leave and rejoin, a reconnecting session, do not resubscribe).
    :param subscriber: the pub/sub reader (default: one connection to ``url``).
    """

    def __init__(
        self,
        url: str,
        *,
        history: int = 1000,
        stream_ttl: float = 86400.0,
        prefix: str = "aw",
        heartbeat: float = 1.0,
        max_streams: int = 100_000,
        backoff_max: float = 2.0,
        idempotency_window: float = 300.0,
        linger: float = 5.0,
        subscriber: Subscriber | None = None,
    ) -> None:
        self.url = url
        self.target = parse(url)
        self.history_size = history
        self.stream_ttl = int(stream_ttl)
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.backoff_max = backoff_max
        self.idempotency_ms = int(idempotency_window * 1000)
        self.node_id = "node-" + secrets.token_hex(4)
        self.bus = f"{prefix}:bus"
        """Node notices to every node (a node stopping); stream events have channels of
        their own."""
        self.every_user = False
        """Receive every user stream (set before :meth:`start`, by an ``on_undelivered``
        hook: the hook's election needs every node to see every user event). One pattern
        subscription; standalone Redis only."""
        self._subscriber = subscriber
        self._linger = linger
        self.routes: Routes | None = None
        self._active: set[bytes] = set()
        self._user_channels = f"{prefix}:{{user:".encode()
        self.tracker = GapTracker(max_streams)
        self.on_request: Rpc | None = None
        self.on_notice: Callable[[dict[str, Any]], None] | None = None
        self.on_node_gone: Callable[[str], None] | None = None
        self.on_beat: Callable[[], Awaitable[None]] | None = None
        self._targets: OrderedDict[str, tuple[str, str, str | None]] = OrderedDict()
        self._max_streams = max_streams
        self._deliver: Callable[[Envelope], None] | None = None
        self._redis: aioredis.Redis | None = None
        # Sentinel and Cluster: the failover-stamped scripts (redis_scripts.py).
        self._stamped = self.target.kind != "standalone"
        self._read_script: Any = None
        self._batcher: PublishBatcher | None = None  # publishes go to Redis in pipelines
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._closing = False  # stop() began: the loops end even if a cancel is swallowed
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reply_nodes: dict[int, str] = {}  # request id -> the node asked
        self._ids = itertools.count(1)
        self._state = "down"
        self.on_state: Callable[[str], None] | None = None
        """Called with the new state when the connection state changes (observers)."""
        self.counters = {
            "published": 0,
            "received": 0,
            "filled": 0,
            "lost": 0,
            "reconnects": 0,
            "stray": 0,
            "stream_received": 0,
        }
        """``stream_received``: stream messages (events, presence) received, strays
        included (interest routing: a node hosting no consumer of a stream gets none).
        ``stray``: stream messages received for a stream no longer wanted here (in
        flight when it was unsubscribed), dropped."""

    # -- keys -----------------------------------------------------------------------------
    def _keys(self, stream: str) -> list[str]:
        return stream_keys(self.prefix, stream)

    def stream_keys(self, stream: str) -> list[str]:
        """The Redis keys of ``stream``: history, epoch, offset."""
        return self._keys(stream)

    def channel(self, stream: str) -> str:
        """The pub/sub channel of ``stream``'s events."""
        return stream_channel(self.prefix, stream)

    def node_channel(self, node: str) -> str:
        """The request channel of ``node`` (on a cluster a shard channel, hash-tagged:
        ``SPUBLISH`` counts its listeners exactly, where a plain ``PUBLISH`` counts only
        those of the cluster node it reached)."""
        if self.target.kind == "cluster":
            return f"{self.prefix}:{{node:{node}}}"
        return f"{self.prefix}:node:{node}"

    async def _send(self, channel: str, message: bytes, *, sharded: bool = True) -> int:
        """Publish ``message`` on ``channel``; returns the listeners Redis counted. On a
        cluster ``SPUBLISH`` (a :class:`~.redis_cluster_sub.ClusterSubscriber` reads only
        shard channels, and only ``SPUBLISH`` counts a channel's listeners exactly)
        unless ``sharded`` is False (user stream channels: :mod:`.redis_wiring`)."""
        if sharded and self.target.kind == "cluster":
            return int(await self.redis.spublish(channel, message))
        return int(await self.redis.publish(channel, message))

    def alive_key(self, node: str) -> str:
        """The heartbeat key of ``node`` (expires after 3 missed heartbeats)."""
        return f"{self.prefix}:alive:{node}"

    @property
    def redis(self) -> aioredis.Redis:
        """The command connection pool (raises if the broker is not started)."""
        if self._redis is None:
            raise BrokerUnavailable("broker not started")
        return self._redis

    # -- Broker protocol ------------------------------------------------------------------
    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        """Connect and subscribe; waits up to 5 s for the first subscription, then keeps
        retrying in the background (the node serves local traffic meanwhile)."""
        self._deliver = deliver
        self._closing = False
        opts: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 2.0}
        # A pool that makes a command wait (bounded) for a free connection: redis-py's
        # default pool fails at once past 100 connections in use ("Too many
        # connections"), which a burst of catch-ups or publishes, or a paused Redis
        # holding every connection, reaches: emits failed while Redis was fine.
        self.target = target = await detect(self.target)
        cluster = target.kind == "cluster"
        self._stamped = target.kind != "standalone"
        cluster_opts = {"socket_connect_timeout": 2.0} if cluster else opts
        self._redis = client = command_client(  # type: ignore[assignment]
            target, max_connections=_POOL_SIZE, pool_wait=_POOL_WAIT, socket_timeout=5.0,
            **cluster_opts,
        )  # fmt: skip
        self._read_script = client.register_script(STAMPED_READ.text if self._stamped else READ)
        one = publish_script(stamped=self._stamped)
        self._batcher = PublishBatcher(
            client,  # type: ignore[arg-type]
            script=cluster_script if cluster else (lambda _call: one),
            wait=_POOL_WAIT,
            counters=self.counters,
        )
        subscriber = self._subscriber or make_subscriber(
            target,
            client,
            prefix=self.prefix,
            backoff_max=self.backoff_max,
            every_user=self.every_user,
            **opts,
        )
        covered = is_user_stream if self.every_user else None
        self.routes = Routes(subscriber, self.channel, self._linger, covered)
        self.routes.on_unsubscribed = self._unsubscribed
        self._active = self.routes.active
        await self.routes.start(self._on_message, self._resubscribed, self._sub_state)
        self._loops = [asyncio.create_task(self._beat_loop(), name="anywire-redis-heartbeat")]
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(5.0):
                await self.routes.hold([self.bus, self.node_channel(self.node_id)])

    async def stop(self, timeout: float = 1.0) -> None:
        """Stop reading and beating, and close the connections, within about
        ``timeout`` seconds (a Redis that does not answer is not waited for)."""
        self._closing = True
        self.abort_requests("this node is stopping")
        if self._batcher is not None:
            self._batcher.close("this node is stopping")
        if self._redis is not None:
            # Tell the other nodes at once: whatever they forward here fails over now,
            # not after the heartbeat expires (bounded: Redis may be paused).
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(timeout / 4):
                    await self._send(self.bus, b"X" + self.node_id.encode())
        tasks = [*self._loops, *self._tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a cancellation swallowed inside redis-py once left the heartbeat
            # looping and the process unable to exit. The flag above ends the loops at
            # their next turn; anything still running after that is abandoned, logged.
            _, pending = await asyncio.wait(tasks, timeout=timeout / 2)
            if pending:
                log.warning("anywire: %d Redis broker task(s) did not stop", len(pending))
        self._loops = []
        if self._redis is not None:
            # Gone at once rather than after three missed heartbeats (bounded: a paused
            # Redis would hold this for the socket timeout).
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(timeout / 4):
                    await self._redis.delete(self.alive_key(self.node_id))
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(timeout / 8):
                    await self._redis.aclose()
        if self.routes is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(timeout / 4):
                    await self.routes.stop()  # the reader is cancelled first, at once
        self._redis = None
        self._batcher = None
        self._deliver = None
        # A clean stop is not an outage: listeners (the connection log's WARNING, the
        # broker_up gauge's alerts) are not told of it.
        self._state = "down"

    def state(self) -> str:
        return self._state

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if self.on_state is not None:
                self.on_state(state)

    async def publish(self, envelope: Envelope) -> StreamPos:
        call = publish_call(
            self.prefix,
            stream_of(envelope),
            pack_envelope(envelope),
            envelope.key,
            history=self.history_size,
            ttl=self.stream_ttl,
            idempotency_ms=self.idempotency_ms,
        )
        if self._stamped:
            call = stamped_call(call, self.prefix)
        if self._batcher is None:
            raise BrokerUnavailable("broker not started")
        pos = envelope.pos = call.position(await self._batcher.run(call))
        self.counters["published"] += 1
        return pos

    async def publish_volatile(self, envelope: Envelope) -> None:
        """Send ``envelope`` to the *other* nodes only, without stream position or history
        (presence events: at-most-once)."""
        message = b"V" + self.node_id.encode() + b" " + pack_envelope(envelope)
        try:
            # On the stream's channel: only the nodes hosting its consumers get it.
            stream = stream_of(envelope)
            await self._send(self.channel(stream), message, sharded=not is_user_stream(stream))
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"publish failed: Redis unavailable ({exc})") from exc

    async def read(self, stream: str, epoch: str, after: int) -> StreamRead:
        args = [secrets.token_hex(4), epoch, after, self.stream_ttl]
        keys = self._keys(stream)
        if self._stamped:
            keys.append(stamp_key(self.prefix, stream))
        try:
            current, head, start, entries = await self._read_script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"history unavailable: {exc}") from exc
        out: list[tuple[int, Envelope]] = []
        for entry_id, fields in entries:
            off = int(text(entry_id).split("-", 1)[0])
            env = unpack_envelope(entry_field(fields, b"d"))
            env.pos = (stream, text(current), off)
            out.append((off, env))
        return StreamRead(text(current), int(head), int(start), out)

    async def entry(self, stream: str, epoch: str, offset: int) -> Envelope | None:
        found = None
        with contextlib.suppress(BrokerUnavailable):
            found = await self._range(stream, epoch, offset - 1, offset)
        for off, env in found or ():
            if off == offset:
                return env
        return None

    def drop(self, stream: str) -> None:
        """Session streams in Redis are deleted by the cluster (only while this node still
        owns the session: another node may have taken it over), or expire."""

    def position(self, stream: str) -> tuple[str, int] | None:
        """How far this node has delivered ``stream`` (epoch, offset)."""
        return self.tracker.position(stream)

    def seed(self, stream: str, epoch: str, offset: int) -> None:
        """Start gap tracking of ``stream`` at a position read from history."""
        self.tracker.seed(stream, epoch, offset)

    async def _range(
        self, stream: str, epoch: str, after: int, upto: int | None
    ) -> list[tuple[int, Envelope]] | None:
        """Entries of ``stream`` after ``after`` (up to ``upto``), or None if the epoch is
        not the stream's (or ``after`` is ahead of it)."""
        hkey, ekey, nkey = self._keys(stream)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(ekey)
                pipe.get(nkey)
                pipe.xrange(
                    hkey,
                    f"{after + 1}-0",
                    "+" if upto is None else f"{upto}-0",
                    count=self.history_size + 1,
                )
                current, head, entries = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"history unavailable: {exc}") from exc
        if current is None or text(current) != epoch or after > int(head or 0):
            return None
        out: list[tuple[int, Envelope]] = []
        for entry_id, fields in entries:
            off = int(text(entry_id).split("-", 1)[0])
            env = unpack_envelope(entry_field(fields, b"d"))
            env.pos = (stream, epoch, off)
            out.append((off, env))
        return out

    # -- node requests ----------------------------------------------------------------------
    async def request(self, node: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``payload`` to ``node`` and wait for its reply. Raises
        :class:`BrokerUnavailable` if the node is not listening or Redis is down, and
        ``TimeoutError`` when no reply comes within ``timeout``."""
        if self._closing:
            raise BrokerUnavailable("this node is stopping")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        self._reply_nodes[rid] = node
        try:
            message = {**payload, "id": rid, "from": self.node_id}
            try:
                channel = self.node_channel(node)
                listeners = await self._send(channel, b"R" + dumps(message))
            except (RedisError, OSError) as exc:
                raise BrokerUnavailable(f"Redis unavailable: {exc}") from exc
            if not listeners:
                raise BrokerUnavailable(f"node {node} is gone")
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._replies.pop(rid, None)
            self._reply_nodes.pop(rid, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # failed (node gone) before we awaited it: seen, not logged

    async def notify(self, node: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` to ``node`` without waiting for anything (at most once: lost
        if the node is gone or Redis is down)."""
        message = b"N" + dumps(payload)
        with contextlib.suppress(RedisError, OSError, BrokerUnavailable):
            await self._send(self.node_channel(node), message)

    def waiting_for(self) -> set[str]:
        """The nodes this one has requests waiting on."""
        return set(self._reply_nodes.values())

    def fail_requests_to(self, node: str, reason: str) -> None:
        """Fail every request still waiting for ``node`` (declared dead)."""
        for rid, target in list(self._reply_nodes.items()):
            fut = self._replies.get(rid)
            if target == node and fut is not None and not fut.done():
                fut.set_exception(BrokerUnavailable(reason))

    def abort_requests(self, reason: str) -> None:
        """Fail every request still waiting for a reply (the node is shutting down)."""
        for fut in list(self._replies.values()):
            if not fut.done():
                fut.set_exception(BrokerUnavailable(reason))

    async def _answer(self, message: dict[str, Any]) -> None:
        handler = self.on_request
        reply: dict[str, Any]
        try:
            reply = await handler(message) if handler else {"error": "no handler"}
        except Exception as exc:
            log.exception("node request failed")
            reply = {"error": repr(exc)}
        reply["id"] = message.get("id")
        with contextlib.suppress(RedisError, OSError):
            await self._send(self.node_channel(str(message["from"])), b"A" + dumps(reply))

    # -- interest (routing) -----------------------------------------------------------------
    async def want(self, stream: str, consumer: str) -> None:
        """``consumer`` (a local session) starts consuming ``stream``: returns once this
        node is subscribed to the stream's channel (Redis confirmed it), so that a read
        of history made afterwards misses nothing. Raises ``ConnectionError`` while that
        cannot be confirmed (the interest stays: the reconnection subscribes it)."""
        if self.routes is None:
            raise BrokerUnavailable("broker not started")
        await self.routes.want(stream, consumer)

    def unwant(self, stream: str, consumer: str) -> None:
        """``consumer`` no longer consumes ``stream`` (it left the room)."""
        if self.routes is not None:
            self.routes.unwant(stream, consumer)

    def forget(self, consumer: str) -> None:
        """``consumer`` (a session) ended here: it consumes nothing any more."""
        if self.routes is not None:
            self.routes.forget(consumer)

    def _unsubscribed(self, streams: list[str]) -> None:
        # Not received any more: a later consumer starts again from a fresh read.
        for stream in streams:
            self.tracker.forget(stream)
            self._targets.pop(stream, None)

    def _sub_state(self, state: str) -> None:
        self._set_state(state)

    def _resubscribed(self, streams: list[str]) -> None:
        # Whatever was published while we were not subscribed: probe those streams'
        # heads (in the background, so reading goes on) and fill what was missed.
        self.counters["reconnects"] += 1
        self._spawn(self._catch_up(streams))

    def _on_message(self, channel: bytes, data: bytes) -> None:
        self.counters["received"] += 1
        kind = data[:1]
        if kind == b"S" or kind == b"V":
            self.counters["stream_received"] += 1
            if channel not in self._active and not (
                self.every_user and channel.startswith(self._user_channels)
            ):
                # In flight when its stream was unsubscribed: nobody here wants it, and
                # tracking it again would leave a stale position for the next consumer.
                self.counters["stray"] += 1
                return
        if kind == b"S":
            epoch_b, offset_b, body = data[1:].split(b" ", 2)
            env = unpack_envelope(body)
            stream = stream_of(env)
            epoch, offset = epoch_b.decode(), int(offset_b)
            env.pos = (stream, epoch, offset)
            self._remember(stream, env)
            self._apply(self.tracker.offer(stream, epoch, offset, env))
        elif kind == b"V":
            origin, body = data[1:].split(b" ", 1)
            if origin.decode() != self.node_id and self._deliver is not None:
                self._deliver(unpack_envelope(body))
        elif kind == b"R":
            self._spawn(self._answer(loads(data[1:])))
        elif kind == b"N":
            if self.on_notice is not None:
                self.on_notice(loads(data[1:]))
        elif kind == b"X":
            node = data[1:].decode()
            if node != self.node_id:
                self.fail_requests_to(node, f"node {node} stopped")
                if self.on_node_gone is not None:
                    self.on_node_gone(node)
        elif kind == b"A":
            reply = loads(data[1:])
            fut = self._replies.get(int(reply.get("id") or 0))
            if fut is not None and not fut.done():
                fut.set_result(reply)

    def _remember(self, stream: str, env: Envelope) -> None:
        self._targets[stream] = (env.kind, env.namespace, env.target)
        self._targets.move_to_end(stream)
        while len(self._targets) > self._max_streams:
            self._targets.popitem(last=False)

    def _apply(self, step: Step) -> None:
        deliver = self._deliver
        if deliver is None:
            return
        for lost in step.lost:
            self.counters["lost"] += 1 if lost.last is None else lost.last - lost.first + 1
            env = self._lost_envelope(lost)
            if env is not None:
                deliver(env)
        for env in step.items:
            deliver(env)
        if step.fill is not None:
            self._spawn(self._fill(step.fill))

    def _lost_envelope(self, lost: Lost) -> Envelope | None:
        target = self._targets.get(lost.stream)
        if target is None:
            return None
        kind, ns, name = target
        data = {"stream": lost.stream, "epoch": lost.epoch, "from": lost.first, "to": lost.last}
        if kind == "room":
            data["room"] = name
        log.warning("anywire: %s lost from history: %s", lost.stream, data)
        return Envelope(kind, ns, name, "$lost", data)

    async def _fill(self, fill: Fill) -> None:
        if fill.upto <= fill.after:
            self._apply(self.tracker.filled(fill, []))
            return
        try:
            found = await self._range(fill.stream, fill.epoch, fill.after, fill.upto)
        except BrokerUnavailable:
            self.tracker.failed(fill)  # the reconnect's catch-up asks again
            return
        self.counters["filled"] += len(found or ())
        self._apply(self.tracker.filled(fill, found))

    async def _catch_up(self, streams: list[str]) -> None:
        for i in range(0, len(streams), 500):
            chunk = streams[i : i + 500]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for stream in chunk:
                        _, ekey, nkey = self._keys(stream)
                        pipe.get(ekey)
                        pipe.get(nkey)
                    heads = await pipe.execute()
            except (RedisError, OSError):
                return  # the reader reconnects and calls us again
            for j, stream in enumerate(chunk):
                epoch, head = heads[2 * j], heads[2 * j + 1]
                if epoch is None:
                    lost = self.tracker.restart(stream)
                    if lost is not None:
                        self._apply(Step(lost=[lost]))
                    continue
                self._apply(self.tracker.offer(stream, text(epoch), int(head or 0)))

    async def _beat_loop(self) -> None:
        ttl_ms = int(self.heartbeat * 3000)
        while not self._closing:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.set(self.alive_key(self.node_id), b"1", px=ttl_ms)
            if self.on_beat is not None:
                try:
                    await self.on_beat()
                except (RedisError, OSError, BrokerUnavailable):
                    pass
                except Exception:
                    log.exception("anywire: heartbeat work failed")
            await asyncio.sleep(self.heartbeat)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stream_count(self) -> int:
        """Streams this node tracks (for metrics)."""
        return len(self.tracker)

    def channel_count(self) -> int:
        """Stream channels this node holds: consumed here or lingering (for metrics)."""
        return 0 if self.routes is None else self.routes.subscribed()
