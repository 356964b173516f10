"""Which pub/sub reader a :class:`~.broker_redis.RedisBroker` uses, by kind of Redis.

* **One Redis, Sentinel**: a :class:`~.redis_sub.RedisSubscriber` whose connections come
  from :func:`~anywire.redis_connect.subscriber_client` (Sentinel: the current primary,
  asked again at every reconnect, so the reader follows a failover; TLS options apply).
* **Redis Cluster**: stream channels are shard channels (``SSUBSCRIBE``, read by a
  :class:`~.redis_cluster_sub.ClusterSubscriber` on each slot's master), except user
  streams, which go out by plain ``PUBLISH`` and are read by a plain ``SUBSCRIBE`` on one
  cluster node (the cluster bus carries a plain PUBLISH to every cluster node). The
  reason is ``on_undelivered``: its election needs every node with a hook to see every
  user event, through one pattern subscription (``PSUBSCRIBE aw:{user:*}:c``), and
  sharded pub/sub has no patterns. Publishers and nodes agree on the split through
  :func:`anywire.redis_scripts.cluster_script`. :class:`SplitSubscriber` puts the two
  readers behind the one :class:`~.redis_sub.Subscriber` that routing drives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from ..redis_connect import RedisTarget, subscriber_client
from .redis_cluster_sub import ClusterSubscriber
from .redis_sub import RedisSubscriber, Subscriber

__all__ = ["SplitSubscriber", "make_subscriber"]


def make_subscriber(
    target: RedisTarget,
    client: Any,
    *,
    prefix: str,
    backoff_max: float,
    every_user: bool,
    **opts: Any,
) -> Subscriber:
    """The reader for ``target`` (``client``: the broker's command client; on a cluster
    its slot map places the shard channels). ``every_user``: hold the user-stream
    pattern. ``opts``: connection options of the plain reader's clients."""
    patterns = [f"{prefix}:{{user:*}}:c"] if every_user else []
    plain = RedisSubscriber(
        target.url,
        backoff_max=backoff_max,
        patterns=patterns,
        clients=subscriber_client(target, socket_keepalive=True, **opts),
    )
    if target.kind != "cluster":
        return plain
    user_channels = f"{prefix}:{{user:"
    return SplitSubscriber(
        ClusterSubscriber(client), plain, lambda channel: channel.startswith(user_channels)
    )


class SplitSubscriber:
    """One :class:`~.redis_sub.Subscriber` made of two: the channels ``to_second`` picks
    go to ``second``, the others to ``first``. ``ok`` once both are; ``down`` while
    either is."""

    def __init__(
        self, first: Subscriber, second: Subscriber, to_second: Callable[[str], bool]
    ) -> None:
        self.first = first
        self.second = second
        self.to_second = to_second
        self._states = {"first": "down", "second": "down"}
        self._state = "down"

    async def start(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_resubscribed: Callable[[list[str]], None],
        on_state: Callable[[str], None],
    ) -> None:
        def state_of(which: str) -> Callable[[str], None]:
            def changed(value: str) -> None:
                self._states[which] = value
                now = "ok" if all(v == "ok" for v in self._states.values()) else "down"
                if now != self._state:
                    self._state = now
                    on_state(now)

            return changed

        # The plain reader with nothing to hold (no user channel yet, no pattern) does
        # not connect and never reports ``ok``: it counts as up until it holds something
        # (its first connection then reports ``ok``, or ``down`` if it fails).
        if not self.second.channels() and not getattr(self.second, "patterns", None):
            self._states["second"] = "ok"
        await self.first.start(on_message, on_resubscribed, state_of("first"))
        await self.second.start(on_message, on_resubscribed, state_of("second"))

    def _split(self, channels: Iterable[str]) -> tuple[list[str], list[str]]:
        first: list[str] = []
        second: list[str] = []
        for channel in channels:
            (second if self.to_second(channel) else first).append(channel)
        return first, second

    async def subscribe(self, channels: Iterable[str]) -> None:
        first, second = self._split(channels)
        jobs = [s.subscribe(c) for s, c in ((self.first, first), (self.second, second)) if c]
        if jobs:
            await asyncio.gather(*jobs)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        first, second = self._split(channels)
        if first:
            await self.first.unsubscribe(first)
        if second:
            await self.second.unsubscribe(second)

    async def stop(self) -> None:
        await asyncio.gather(self.first.stop(), self.second.stop(), return_exceptions=True)

    def channels(self) -> set[str]:
        return self.first.channels() | self.second.channels()
