"""Starting a node on Redis warns about nothing (redis-py 8 warned on every start when
the asyncio client was given the synchronous ``redis.retry.Retry``)."""

from __future__ import annotations

import warnings

import redis as redis_py

from anywire.server import Anywire

from .conftest import SECRET, RedisServer


async def test_a_node_starts_and_stops_on_redis_without_a_warning(redis: RedisServer) -> None:
    aw = Anywire(anonymous=True, secret=SECRET)
    aw.use_redis(redis.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await aw.start()
        clients = redis.cli("CLIENT", "LIST")
        await aw.stop()
    assert [str(w.message) for w in caught] == [], f"redis-py {redis_py.__version__}"
    # The node really did start on this Redis: it subscribed there.
    assert any(" sub=0 " not in line or " ssub=0 " not in line for line in clients.splitlines())
