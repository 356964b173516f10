"""The few Redis calls that differ on a Redis Cluster, for the broker and its users.

On a cluster a command may only name keys of one slot. Stream keys share their
stream's hash tag; what reads keys of many slots (every node's heartbeat key) goes
through :func:`mget`, which splits by slot there (``MGET`` per slot, not atomic: the
callers only read independent flags). A publish runs through ``RedisCluster``, which
follows ``MOVED``/``ASK`` itself (:func:`~anywire.redis_scripts.run_on_cluster`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

from ..redis_scripts import run_on_cluster

__all__ = ["is_cluster", "mget", "run_on_cluster"]


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a ``RedisCluster``."""
    return isinstance(client, RedisCluster)


async def mget(client: Any, keys: Sequence[str]) -> list[Any]:
    """``MGET`` of ``keys`` of any slots (split by slot on a cluster)."""
    if not keys:
        return []
    if isinstance(client, RedisCluster):
        return list(await client.mget_nonatomic(list(keys)))
    return list(await client.mget(list(keys)))
