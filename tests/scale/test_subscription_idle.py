"""A pub/sub connection that goes dead while its channels are quiet is found and replaced,
and what was published meanwhile reaches the sessions from history (issue #17's
left-over: "no PING on an idle pub/sub connection").

Without the idle PING the node took a black-holed connection (open, nothing passes:
a NAT or firewall that forgot it, a partition; TCP keepalive notices after hours) for a
quiet one: every event published afterwards missed the node and nobody was told, until
some later event's offset happened to show the gap.

Real parts: a redis-server the test starts and a TCP proxy (tests/netfault.py) in front
of it for the node's pub/sub connection only; publishes go straight to Redis, so they
reach its history while the subscription is cut off.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from anywire.core.frames import Join
from anywire.server.app import Anywire
from anywire.server.broker_redis import RedisBroker
from anywire.server.redis_sub import RedisSubscriber
from anywire.transports.base import TransportInfo
from tests.e2e.conftest import free_port
from tests.netfault import FaultProxy

from .conftest import SECRET, RedisServer
from .inproc import INFOS, Peer, until

pytestmark = pytest.mark.timeout(60)

IDLE = 1.0  # the subscriber's idle_ping
CONFIRM = 1.0  # its confirm_timeout: a dead connection is found within IDLE + CONFIRM
ROOM = "r"


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[tuple[Anywire, FaultProxy, RedisSubscriber]]:
    redis = RedisServer(free_port())
    redis.start()
    proxy = FaultProxy(redis.port)
    subscriber = RedisSubscriber(f"redis://127.0.0.1:{proxy.port}/0", backoff_max=0.5,
                                 confirm_timeout=CONFIRM, idle_ping=IDLE)  # fmt: skip
    aw = Anywire(anonymous=True, secret=SECRET.encode(),
                 broker=RedisBroker(redis.url, subscriber=subscriber))  # fmt: skip
    await aw.start()
    try:
        yield aw, proxy, subscriber
    finally:
        proxy.close()
        await aw.stop(grace=0.1)
        redis.kill()


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
async def test_events_published_while_a_quiet_subscription_was_black_holed_arrive(
    info: TransportInfo,
) -> None:
    async with running() as (aw, proxy, subscriber):
        peer = Peer(aw, info)
        await peer.connect()
        aw.host.feed(peer.sid, [Join(s=1, id=1, r=ROOM)])
        await until(peer.answered(1), 10)
        await aw.emit("tick", 0, room=ROOM)
        await until(lambda: peer.events("tick") == [0], 5)
        # Quiet for longer than the idle PING's interval: the connection is alive, so
        # it is kept (its pong answers).
        before = proxy.connections
        heard = subscriber._heard
        await until(lambda: subscriber._heard > heard, 3 * (IDLE + CONFIRM))
        assert proxy.connections == before and aw.broker.state() == "ok"
        # Now it goes dead without closing, and the room gets events meanwhile.
        proxy.set("blackhole")
        for i in (1, 2, 3):
            await aw.emit("tick", i, room=ROOM)
        # Found within the idle PING's bound (before the fix: never; the node stayed
        # "ok" and the events above never came).
        await until(lambda: aw.broker.state() == "down", 2 * (IDLE + CONFIRM) + 2)
        proxy.set("forward")
        # Resubscribed: the broker reads what it missed from history, in order, once,
        # with nothing else published to reveal the gap.
        await until(lambda: peer.events("tick") == [0, 1, 2, 3], 10)
        assert peer.events("$lost") == []
        await aw.emit("tick", 4, room=ROOM)
        await until(lambda: peer.events("tick") == [0, 1, 2, 3, 4], 5)
