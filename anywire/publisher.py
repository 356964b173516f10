"""Publish to anywire clients from any Python process, straight to Redis, without a node.

A Django view, a Celery task or a cron script emits with :class:`Publisher` (blocking,
redis-py's synchronous client) or :class:`AsyncPublisher` (asyncio). The event goes
through the same publish script as a node's ``aw.emit`` (:mod:`anywire.redis_wire`): it
gets the next offset of its stream, is kept in the stream's history and is announced on
the stream's channel, so every node hosting a consumer of the stream delivers it exactly
like its own publishes, and a client that was away catches it up on resume.

Both classes share one builder (:class:`PublishBuilder`: validation, envelope, keys);
each only runs the script its own way. ``emit_many`` publishes several events in one
pipeline; :class:`AsyncPublisher` also pipelines the emits made together
(:mod:`anywire.redis_batch`). Only redis-py and msgpack are imported: not the
server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from .core.codec import Codec, JsonCodec, MsgpackCodec, Outgoing
from .core.frames import StreamPos
from .core.settings import Settings
from .core.streams import target_stream
from .errors import BrokerUnavailable
from .redis_batch import PublishBatcher, run_calls
from .redis_connect import command_client, parse, sync_command_client
from .redis_scripts import Script, cluster_script, publish_script, run_on_cluster_sync, stamped_call
from .redis_wire import PublishCall, pack, publish_call

__all__ = ["AsyncPublisher", "BrokerUnavailable", "PublishBuilder", "Publisher"]

_DEFAULTS = Settings()  # the nodes' defaults


class PublishBuilder:
    """What a publish writes, built and checked once for both publishers.

    The keyword settings must match the nodes' (``Settings.stream_history`` and the
    ``RedisBroker`` defaults): ``prefix`` is the key prefix, ``history`` the entries kept
    per stream, ``stream_ttl`` the seconds a stream lives after its last publish and
    ``idempotency_window`` the seconds an ``id=`` is remembered.
    """

    def __init__(
        self,
        namespace: str = "/",
        *,
        prefix: str = "aw",
        history: int = _DEFAULTS.stream_history,
        stream_ttl: float = 86400.0,
        idempotency_window: float = 300.0,
        max_depth: int | None = _DEFAULTS.max_depth,
    ) -> None:
        if not isinstance(namespace, str) or not namespace.startswith("/"):
            raise ValueError(f"namespace must be a string starting with '/', not {namespace!r}")
        self.namespace = namespace
        self.prefix = prefix
        self.history = history
        self.stream_ttl = int(stream_ttl)
        self.idempotency_ms = int(idempotency_window * 1000)
        # The codecs a node encodes events with: data one of them cannot carry would fail
        # in the node's writer, so it is refused here, in the caller, like aw.emit does.
        self._codecs: tuple[Codec, ...] = (
            JsonCodec(max_depth=max_depth),
            MsgpackCodec(msgpack.packb, msgpack.unpackb, max_depth=max_depth),
        )

    def _use(self, url: str) -> None:
        """Parse ``url`` (:mod:`anywire.redis_connect`: ``RedisURLError``, a ValueError,
        if it is bad) and choose the script its kind of Redis needs."""
        self.target = parse(url)
        # Sentinel and Cluster: the failover-stamped script, as the nodes use there.
        self._stamped = self.target.kind != "standalone"
        self._script = publish_script(stamped=self._stamped)
        # On a cluster the script depends on the stream (sharded or not: cluster_script).
        self._cluster = self.target.kind == "cluster"

    def _script_of(self, call: PublishCall) -> Script:
        return cluster_script(call) if self._cluster else self._script

    def _shape(self, call: PublishCall) -> PublishCall:
        return stamped_call(call, self.prefix) if self._stamped else call

    def build(
        self,
        event: str,
        data: Any = None,
        *,
        room: str | None = None,
        user: str | None = None,
        sid: str | None = None,
        id: str | None = None,
    ) -> PublishCall:
        """Check the arguments (ValueError, TypeError) and build the script call."""
        if not isinstance(event, str) or not event:
            raise ValueError(f"event must be a non-empty string, not {event!r}")
        if event.startswith("$"):
            raise ValueError(f"event names starting with '$' are reserved: {event!r}")
        if id is not None and (not isinstance(id, str) or not 0 < len(id) <= 200):
            raise ValueError("id must be a string of 1-200 characters")
        targets = (("room", room), ("user", user), ("session", sid))
        given = [(kind, t) for kind, t in targets if t is not None]
        if len(given) > 1:
            raise ValueError("give at most one of room=, user=, sid=")
        if any(not isinstance(t, str) or not t for _, t in given):
            raise ValueError("room=, user= and sid= must be non-empty strings")
        kind, target = given[0] if given else ("all", None)
        out = Outgoing("event", {"e": event, "d": data})
        for codec in self._codecs:
            out.body(codec)  # raises TypeError for data this codec cannot carry
        body = pack(kind, self.namespace, target, event, data, at=time.time())
        return publish_call(
            self.prefix,
            target_stream(kind, self.namespace, target),
            body,
            id,
            history=self.history,
            ttl=self.stream_ttl,
            idempotency_ms=self.idempotency_ms,
        )


class Publisher(PublishBuilder):
    """Publish from synchronous code (a Django view, a Celery task, a thread).

    ``Publisher(redis_url, namespace="/")``; ``emit(event, data, room=|user=|sid=)``
    publishes to a room, every session of a user, one session, or (no target) everyone in
    the namespace, and returns the position ``(stream, epoch, offset)``. Same guarantees
    as ``aw.emit``: in order, exactly once per client, caught up on resume, ``$lost`` when
    history no longer holds it. ``id=`` is an idempotency key.

    When Redis cannot be reached or fails mid-publish, :meth:`emit` raises
    :class:`~anywire.errors.BrokerUnavailable` (never redis-py's exceptions):
    ``maybe_published`` False means the call never reached Redis (nothing was
    published); True means Redis may have run it before the failure (its reply was lost):
    retry with the same ``id=`` and it is published at most once. Nothing is retried
    for you: a failure is reported within ``timeout`` seconds (connect and each reply).
    Thread-safe (redis-py's connection pool).
    """

    def __init__(
        self, redis_url: str, namespace: str = "/", *, timeout: float = 5.0, **settings: Any
    ) -> None:
        super().__init__(namespace, **settings)
        self._use(redis_url)
        self.redis = sync_command_client(
            self.target,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a blind retry could publish twice
        )

    def emit(self, event: str, data: Any = None, **target: Any) -> StreamPos:
        """Publish ``event`` (see the class) and return its stream position."""
        call = self._shape(self.build(event, data, **target))
        result = self._run([call])[0]
        if isinstance(result, BrokerUnavailable):
            raise result
        return result

    def emit_many(self, items: Iterable[Mapping[str, Any]]) -> list[StreamPos | BrokerUnavailable]:
        """Publish several events in one round trip (one pipeline): each item holds
        :meth:`emit`'s arguments (``{"event": "news", "data": 1, "room": "lobby"}``, with
        ``user``, ``sid`` or ``id`` as in :meth:`emit`). Every item is checked first: a bad
        one raises (ValueError, TypeError) and nothing is published. Returns one result per
        item, in order: its position, or its :class:`~anywire.errors.BrokerUnavailable`
        (returned, not raised; ``maybe_published`` per item). Items to one stream get
        their offsets in item order. (On a Redis Cluster: one call after the other, to
        each stream's master, not one pipeline.)"""
        calls = [self._shape(self.build(**item)) for item in items]
        return self._run(calls)

    def _run(self, calls: list[PublishCall]) -> list[StreamPos | BrokerUnavailable]:
        if not isinstance(self.redis, redis.RedisCluster):
            return _positions(calls, run_calls(self.redis, calls, self._script_of))
        replies: list[Any] = []
        for call in calls:
            try:
                replies.append(
                    run_on_cluster_sync(self.redis, self._script_of(call), call.keys, call.args)
                )
            except BrokerUnavailable as exc:
                replies.append(exc)
        return _positions(calls, replies)

    def close(self) -> None:
        """Release the connections."""
        self.redis.close()


class AsyncPublisher(PublishBuilder):
    """:class:`Publisher` for asyncio code: ``await emit(...)``, ``await aclose()``;
    the same :class:`~anywire.errors.BrokerUnavailable` on a Redis failure."""

    def __init__(
        self, redis_url: str, namespace: str = "/", *, timeout: float = 5.0, **settings: Any
    ) -> None:
        super().__init__(namespace, **settings)
        self._use(redis_url)
        self.redis = command_client(
            self.target,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=AsyncRetry(NoBackoff(), 0),  # a blind retry could publish twice
        )
        self._batcher = PublishBatcher(
            self.redis,  # type: ignore[arg-type]
            wait=timeout,
            script=self._script_of,
        )

    async def emit(self, event: str, data: Any = None, **target: Any) -> StreamPos:
        """Publish ``event`` (see :class:`Publisher`) and return its stream position.
        Emits made together (``asyncio.gather``, many tasks) go to Redis in pipelines."""
        call = self._shape(self.build(event, data, **target))
        return call.position(await self._batcher.run(call))

    async def emit_many(
        self, items: Iterable[Mapping[str, Any]]
    ) -> list[StreamPos | BrokerUnavailable]:
        """:meth:`Publisher.emit_many` for asyncio: every item checked first, then all
        issued together (pipelined), one position or ``BrokerUnavailable`` per item."""
        calls = [self._shape(self.build(**item)) for item in items]
        replies = await asyncio.gather(
            *(self._batcher.run(call) for call in calls), return_exceptions=True
        )
        return _positions(calls, replies)

    async def aclose(self) -> None:
        """Release the connections."""
        self._batcher.close("the publisher is closed")
        await self.redis.aclose()


def _positions(calls: list[PublishCall], replies: list[Any]) -> list[StreamPos | BrokerUnavailable]:
    out: list[StreamPos | BrokerUnavailable] = []
    for call, reply in zip(calls, replies, strict=True):
        if isinstance(reply, BaseException):
            if not isinstance(reply, BrokerUnavailable):
                raise reply
            out.append(reply)
        else:
            out.append(call.position(reply))
    return out
