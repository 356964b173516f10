"""The Redis broker: fan-out between nodes, with per-stream offsets and history in Redis.

One publish is one Lua script (``EVALSHA``): ``INCR`` the stream's offset, ``XADD`` the
envelope to the stream's history (``MAXLEN ~ history``, entry id ``<offset>-0``) and
``PUBLISH`` it with its position on the bus channel, atomically. Every node subscribes to
the bus and hands what arrives to its ``deliver`` callback, the publishing node included,
so one node and many share a single delivery path.

Pub/sub is at-most-once (messages vanish during reconnects), so each node runs the
arrivals through :class:`~anywire.core.gaps.GapTracker`: a skipped offset is fetched from
the stream with ``XRANGE`` before later ones are delivered; what history no longer holds
becomes a ``$lost`` event to the affected local sessions. After a reconnect every tracked
stream's head is probed the same way. Key layout, memory bounds and guarantees:
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
from redis.exceptions import NoScriptError, RedisError

from ..core.frames import StreamPos
from ..core.gaps import Fill, GapTracker, Lost, Step
from ..core.streams import StreamRead
from ..redis_connect import command_client, detect, parse, subscriber_client
from ..redis_scripts import READ, publish_script, stamp_key, stamped_call
from ..redis_wire import (
    dumps,
    loads,
    pack,
    publish_call,
    publish_failed,
    stream_keys,
)
from .broker import Envelope, stream_of
from .errors import BrokerUnavailable
from .redis_cluster_calls import is_cluster, run_on_cluster
from .redis_cluster_sub import ClusterSubscriber

__all__ = ["RedisBroker"]

log = logging.getLogger("anywire.redis")

_POOL_SIZE = 200  # command connections per node
_POOL_WAIT = 2.0  # seconds a command waits for one before it fails (BrokerUnavailable)

# KEYS: history, epoch, offset. ARGV: fresh epoch, epoch asked, after, ttl.
# The stream is created (its epoch chosen) if it does not exist, so a session that starts
# consuming it can be told its position. Returns {epoch, head, after, entries}: the entries
# after `after` if the epoch asked is current, else from the start of the current epoch.
_READ = """
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
        self.tracker = GapTracker(max_streams)
        self.on_request: Rpc | None = None
        self.on_notice: Callable[[dict[str, Any]], None] | None = None
        self.on_node_gone: Callable[[str], None] | None = None
        self.on_beat: Callable[[], Awaitable[None]] | None = None
        self._targets: OrderedDict[str, tuple[str, str, str | None]] = OrderedDict()
        self._max_streams = max_streams
        self._deliver: Callable[[Envelope], None] | None = None
        self._redis: aioredis.Redis | None = None
        self._sub_redis: aioredis.Redis | None = None
        self._sub_clients: Any = None  # redis_connect.subscriber_client(): one per connect
        self._node_sub: ClusterSubscriber | None = None  # a cluster's node channel
        # Sentinel and Cluster: the failover-stamped scripts (redis_scripts.py).
        self._stamped = self.target.kind != "standalone"
        self._script = publish_script()
        self._read_script: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._closing = False  # stop() began: the loops end even if a cancel is swallowed
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reply_nodes: dict[int, str] = {}  # request id -> the node asked
        self._ids = itertools.count(1)
        self._state = "down"
        self.on_state: Callable[[str], None] | None = None
        """Called with the new state when the connection state changes (observers)."""
        self._subscribed = asyncio.Event()
        self.counters = {"published": 0, "received": 0, "filled": 0, "lost": 0, "reconnects": 0}

    # -- keys -----------------------------------------------------------------------------
    def _keys(self, stream: str) -> list[str]:
        return stream_keys(self.prefix, stream)

    def stream_keys(self, stream: str) -> list[str]:
        """The Redis keys of ``stream``: history, epoch, offset."""
        return self._keys(stream)

    def node_channel(self, node: str) -> str:
        """The request channel of ``node`` (on a cluster a shard channel, hash-tagged:
        ``SPUBLISH`` counts its listeners exactly, where a plain ``PUBLISH`` counts only
        those of the cluster node it reached)."""
        if self.target.kind == "cluster":
            return f"{self.prefix}:{{node:{node}}}"
        return f"{self.prefix}:node:{node}"

    async def _to_node(self, channel: str, message: bytes) -> int:
        if self._node_sub is not None:
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
        self._stamped = target.kind != "standalone"
        self._script = publish_script(stamped=self._stamped)
        cluster_opts = {"socket_connect_timeout": 2.0} if target.kind == "cluster" else opts
        self._redis = client = command_client(  # type: ignore[assignment]
            target, max_connections=_POOL_SIZE, pool_wait=_POOL_WAIT, socket_timeout=5.0,
            **cluster_opts,
        )  # fmt: skip
        self._sub_clients = subscriber_client(target, socket_keepalive=True, **opts)
        self._sub_redis = next(self._sub_clients)
        self._read_script = client.register_script(READ.text if self._stamped else _READ)
        if target.kind == "cluster":
            self._node_sub = ClusterSubscriber(client)  # type: ignore[arg-type]
            await self._node_sub.start(self._on_message, _ignore, _ignore)
            with contextlib.suppress(ConnectionError):  # placed later: requests wait
                await self._node_sub.subscribe([self.node_channel(self.node_id)])
        self._loops = [
            asyncio.create_task(self._read_loop(), name="anywire-redis-reader"),
            asyncio.create_task(self._beat_loop(), name="anywire-redis-heartbeat"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self._subscribed.wait()

    async def stop(self, timeout: float = 1.0) -> None:
        """Stop reading and beating, and close the connections, within about
        ``timeout`` seconds (a Redis that does not answer is not waited for)."""
        self._closing = True
        self.abort_requests("this node is stopping")
        if self._redis is not None:
            # Tell the other nodes at once: whatever they forward here fails over now,
            # not after the heartbeat expires (bounded: Redis may be paused).
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(timeout / 4):
                    await self._redis.publish(self.bus, b"X" + self.node_id.encode())
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
        if self._sub_redis is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(timeout / 8):
                    await self._sub_redis.aclose()
        if self._node_sub is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(timeout / 8):
                    await self._node_sub.stop()
        self._node_sub = None
        self._redis = self._sub_redis = None
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
            _pack(envelope),
            envelope.key,
            history=self.history_size,
            ttl=self.stream_ttl,
            idempotency_ms=self.idempotency_ms,
        )
        if self._stamped:
            call = stamped_call(call, self.prefix)
        pos = envelope.pos = call.position(await self._run_publish(call.keys, call.args))
        self.counters["published"] += 1
        return pos

    async def _run_publish(self, keys: list[str], args: list[Any]) -> list[Any]:
        """Run the publish script, telling apart a failure before Redis got the command
        (certainly not published) from one after (the reply was lost: maybe published)."""
        if is_cluster(self.redis):
            return await run_on_cluster(self.redis, self._script, keys, args)
        pool = self.redis.connection_pool
        try:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            raise publish_failed(exc, sent=False) from exc
        sent = False
        try:
            await conn.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
            sent = True
            try:
                result = await conn.read_response()
            except NoScriptError:
                sent = False  # the script did not run: load it with EVAL
                await conn.send_command("EVAL", self._script.text, len(keys), *keys, *args)
                sent = True
                result = await conn.read_response()
        except (RedisError, OSError) as exc:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            raise publish_failed(exc, sent) from exc
        except BaseException:
            # Cancelled mid-command: the connection's state is unknown, do not reuse it.
            with contextlib.suppress(Exception):
                await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return list(result)

    async def publish_volatile(self, envelope: Envelope) -> None:
        """Send ``envelope`` to the *other* nodes only, without stream position or history
        (presence events: at-most-once)."""
        message = b"V" + self.node_id.encode() + b" " + _pack(envelope)
        try:
            await self.redis.publish(self.bus, message)
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
            off = int(_text(entry_id).split("-", 1)[0])
            env = _unpack(_field(fields, b"d"))
            env.pos = (stream, _text(current), off)
            out.append((off, env))
        return StreamRead(_text(current), int(head), int(start), out)

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
        if current is None or _text(current) != epoch or after > int(head or 0):
            return None
        out: list[tuple[int, Envelope]] = []
        for entry_id, fields in entries:
            off = int(_text(entry_id).split("-", 1)[0])
            env = _unpack(_field(fields, b"d"))
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
                listeners = await self._to_node(channel, b"R" + dumps(message))
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
            await self._to_node(self.node_channel(node), message)

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
            await self._to_node(self.node_channel(str(message["from"])), b"A" + dumps(reply))

    # -- reading ----------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        delay = 0.05
        first = True
        while not self._closing:
            assert self._sub_redis is not None
            pubsub = self._sub_redis.pubsub(ignore_subscribe_messages=True)
            try:
                if self._node_sub is None:
                    await pubsub.subscribe(self.bus, self.node_channel(self.node_id))
                else:
                    await pubsub.subscribe(self.bus)
                if not first:
                    self.counters["reconnects"] += 1
                first = False
                self._set_state("ok")
                self._subscribed.set()
                delay = 0.05
                # Whatever was published while we were not subscribed: probe every
                # tracked stream's head (in the background, so reading goes on).
                self._spawn(self._catch_up())
                # A blocking read returns a message already received without yielding
                # to the loop: the reader goes through everything buffered before the
                # writers run, so a burst of publishes reaches each connection as one
                # batched write, and it yields (the writers run) only when the socket
                # has nothing more. Polling with get_message(timeout=0.0) instead cost
                # a timeout context per message and an exception per burst: about a
                # third of the reader's CPU, which every worker pays for every event
                # (bench/bus_receive.py, docs/scaling.md "Many cores").
                while not self._closing:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["channel"], message["data"])
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                if self._state != "down":
                    log.warning("anywire: Redis subscription lost (%s); reconnecting", exc)
                self._set_state("down")
            except Exception:
                log.exception("anywire: Redis reader failed; restarting it")
                self._set_state("down")
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            # The next server to subscribe on (a cluster's next node; Sentinel's primary).
            old, self._sub_redis = self._sub_redis, next(self._sub_clients)
            with contextlib.suppress(Exception):
                await old.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        self.counters["received"] += 1
        kind = data[:1]
        if kind == b"S":
            epoch_b, offset_b, body = data[1:].split(b" ", 2)
            env = _unpack(body)
            stream = stream_of(env)
            epoch, offset = epoch_b.decode(), int(offset_b)
            env.pos = (stream, epoch, offset)
            self._remember(stream, env)
            self._apply(self.tracker.offer(stream, epoch, offset, env))
        elif kind == b"V":
            origin, body = data[1:].split(b" ", 1)
            if origin.decode() != self.node_id and self._deliver is not None:
                self._deliver(_unpack(body))
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

    async def _catch_up(self) -> None:
        streams = self.tracker.streams()
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
                self._apply(self.tracker.offer(stream, _text(epoch), int(head or 0)))

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


def _ignore(_: Any) -> None:
    """Node requests are at most once: nothing to do after a resubscription."""


def _pack(env: Envelope) -> bytes:
    return pack(
        env.kind, env.namespace, env.target, env.event, env.data, env.skip, env.call, env.at
    )


def _unpack(data: bytes) -> Envelope:
    kind, ns, target, event, payload, skip, *rest = loads(data)
    call = (str(rest[0][0]), str(rest[0][1])) if rest and rest[0] else None
    at = rest[1] if len(rest) > 1 and isinstance(rest[1], int | float) else None
    return Envelope(kind, ns, target, event, payload, skip, call=call, at=at)


def _field(fields: Any, name: bytes) -> bytes:
    """A stream entry's field: a dict from redis-py's XRANGE, a flat list from Lua."""
    if isinstance(fields, dict):
        return bytes(fields[name])
    pairs = list(fields)
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i] == name:
            return bytes(pairs[i + 1])
    raise KeyError(name)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
