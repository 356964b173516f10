"""A rejoin's catch-up ends, whatever the Redis subscription does (issue #17, the stall
of test_sentinel_nodes: docs/reliability/sentinel-duplicates.md, "The stall").

A join with ``since`` holds the room's stream in the session (live events kept aside)
until its catch-up is done, and the catch-up first waits for Redis to confirm the
stream's subscription (``Routes.want``). Two ways that wait never ended, each a join
never answered and a session holding its room's stream for good:

* the stall seen after a Sentinel failover: a stream wanted while the pub/sub connection
  was down, then confirmed by the reconnection (it was held all along), was marked ready
  without its wanter being told, and nothing ever told it;
* a pub/sub connection black-holed (open, nothing comes back): the confirmation never
  comes and nothing fails.

Real parts: a redis-server the test starts and a TCP proxy (tests/netfault.py) in front
of it for the node's pub/sub connection only; commands go straight to Redis, so history
stays readable and only the subscription is cut off.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from anywire.core.frames import Join
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.server.broker_redis import RedisBroker
from anywire.server.redis_sub import RedisSubscriber
from anywire.transports.base import TransportInfo
from tests.e2e.conftest import free_port
from tests.netfault import FaultProxy

from .conftest import SECRET, RedisServer
from .inproc import INFOS, Peer, until

pytestmark = pytest.mark.timeout(60)

PING_INTERVAL, PING_TIMEOUT = 1.0, 1.5
PATIENCE = PING_INTERVAL + PING_TIMEOUT  # what a rejoin's catch-up may wait
CONFIRM = 2.0  # the subscriber's confirm_timeout
BACKOFF = 4.0  # the longest pause between reconnection attempts, first test
ROOM = "r"


@contextlib.asynccontextmanager
async def running(backoff_max: float) -> AsyncIterator[tuple[Anywire, FaultProxy]]:
    """A node whose pub/sub connection goes through a proxy; ``backoff_max``: the
    longest pause between its reconnection attempts."""
    redis = RedisServer(free_port())
    redis.start()
    proxy = FaultProxy(redis.port)
    subscriber = RedisSubscriber(f"redis://127.0.0.1:{proxy.port}/0", backoff_max=backoff_max,
                                 confirm_timeout=CONFIRM)  # fmt: skip
    broker = RedisBroker(redis.url, subscriber=subscriber)
    settings = Settings(ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT,
                        min_ping_interval=PING_INTERVAL)  # fmt: skip
    aw = Anywire(anonymous=True, secret=SECRET.encode(), broker=broker, settings=settings)
    await aw.start()
    try:
        yield aw, proxy
    finally:
        proxy.close()
        await aw.stop(grace=0.1)
        redis.kill()


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
async def test_a_rejoin_wanted_while_the_subscription_was_down_goes_on_once_it_is_back(
    info: TransportInfo,
) -> None:
    async with running(backoff_max=BACKOFF) as (aw, proxy):
        await _rejoin_across_a_reconnection(aw, proxy, info)


async def _rejoin_across_a_reconnection(
    aw: Anywire, proxy: FaultProxy, info: TransportInfo
) -> None:
    routes = aw.broker.routes  # type: ignore[attr-defined]
    first, second, third = Peer(aw, info), Peer(aw, info), Peer(aw, info)
    for peer in (first, second, third):
        await peer.connect()
    aw.host.feed(first.sid, [Join(s=1, id=1, r=ROOM)])  # the node consumes the room
    await until(first.answered(1), 10)
    _, epoch, _ = await aw.emit("tick", 1, room=ROOM)
    for i in (2, 3):
        await aw.emit("tick", i, room=ROOM)
    # The pub/sub connection goes (reset; reconnections refused for now). Its attempts
    # back off (0.05 s doubling): after the 7th, the next is 3.2 s away.
    before = proxy.connections
    proxy.set("refuse")
    await until(lambda: proxy.connections >= before + 7, 10)
    # Meanwhile: a join of another room (its subscription waits for the reconnection)...
    sent = routes.counters["subscribes"]
    aw.host.feed(third.sid, [Join(s=1, id=1, r="other")])
    await until(lambda: routes.counters["subscribes"] > sent, 3)
    # ... and a rejoin of the room from tick 1: its stream is held all along, but not
    # confirmed on a live connection, so it waits too. (Routes' own table: the only
    # place that says the rejoin is waiting.)
    aw.host.feed(second.sid, [Join(s=1, id=2, r=ROOM, since=(epoch, 1))])
    await until(lambda: f"room:/:{ROOM}" in routes._pending, 3)
    # The next attempt connects and confirms everything held, that room included.
    proxy.set("forward")
    await until(second.answered(2), BACKOFF + PATIENCE + 3)
    ack = second.answer(2)
    assert ack is not None and ack["ok"] is True, ack
    # History was reachable all along: the rejoin is caught up, nothing lost. (Before
    # the fix: never answered; with only the bound on each attempt: answered after it,
    # recovered false, ticks 2 and 3 announced lost.)
    assert ack["d"]["recovered"] is True, ack  # type: ignore[index]
    assert second.events("tick") == [2, 3]
    assert second.events("$lost") == []
    await until(third.answered(1), 5)
    await aw.emit("tick", 4, room=ROOM)  # and the room goes on, live
    await until(lambda: second.events("tick") == [2, 3, 4], 5)


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
async def test_a_rejoin_is_answered_while_the_subscription_is_black_holed(
    info: TransportInfo,
) -> None:
    async with running(backoff_max=0.5) as (aw, proxy):
        await _rejoin_into_a_black_hole(aw, proxy, info)


async def _rejoin_into_a_black_hole(aw: Anywire, proxy: FaultProxy, info: TransportInfo) -> None:
    # The room has history (published with nobody subscribed here: Redis keeps it).
    _, epoch, _ = await aw.emit("tick", 1, room=ROOM)
    for i in (2, 3):
        await aw.emit("tick", i, room=ROOM)
    peer = Peer(aw, info)
    await peer.connect()
    # The pub/sub connection stays open, and from now on nothing passes either way.
    proxy.set("blackhole")
    aw.host.feed(peer.sid, [Join(s=1, id=7, r=ROOM, since=(epoch, 1))])
    # Before the fix: never answered (the join waited for a confirmation for good).
    await until(peer.answered(7), PATIENCE + 10)
    ack = peer.answer(7)
    assert ack is not None and ack["ok"] is True, ack
    body = ack["d"]
    assert body["room"] == ROOM  # type: ignore[index]
    # Unconfirmed subscription: whatever followed tick 1 may never reach this node, so
    # the client is told (from 2, count unknown) rather than left waiting.
    assert body["recovered"] is False  # type: ignore[index]
    lost = peer.events("$lost")
    assert [(x["epoch"], x["from"]) for x in lost] == [(epoch, 2)], lost  # type: ignore[index]
    # The connection that never confirmed was given up: once Redis is reachable again
    # the node subscribes anew, and the room's next event reaches the session live.
    proxy.set("forward")
    await until(lambda: aw.broker.state() == "ok", 15)
    await aw.emit("tick", 4, room=ROOM)
    await until(lambda: peer.events("tick") == [4], 10)  # 2 and 3 are inside the $lost
    assert len(peer.events("$lost")) == 1
