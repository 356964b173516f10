"""A rejoin's catch-up ends, whatever the Redis subscription does (issue #17, the stall
of test_sentinel_nodes: docs/reliability/sentinel-duplicates.md, "The stall").

A join with ``since`` holds the room's stream in the session (live events kept aside)
until its catch-up is done, and the catch-up first waits for Redis to confirm the
stream's subscription. When the pub/sub connection is black-holed (connected, nothing
comes back: a half-dead connection after a failover, a stalled proxy), the confirmation
never comes and, before the fix, neither did the join's answer: the session held the
stream for good. Now each attempt is bounded, a subscription left unconfirmed fails the
pub/sub connection (it is replaced), and the join is answered within its patience with
what could not be caught up announced as ``$lost``.

Real parts: a redis-server the test starts and a TCP proxy (tests/netfault.py) in front
of it for the node's pub/sub connection only; commands go straight to Redis, so history
stays readable and only the subscription is cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from anywire.core.frames import Connect, Join
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.server.broker_redis import RedisBroker
from anywire.server.redis_sub import RedisSubscriber
from anywire.transports.base import Link, TransportInfo
from anywire.transports.longpoll import INFO as LONGPOLL
from anywire.transports.sse import INFO as SSE
from anywire.transports.websocket import INFO as WEBSOCKET
from tests.e2e.conftest import free_port
from tests.netfault import FaultProxy
from tests.server.helpers import frames, issue

from .conftest import SECRET, RedisServer

pytestmark = pytest.mark.timeout(60)

PING_INTERVAL, PING_TIMEOUT = 1.0, 1.5
PATIENCE = PING_INTERVAL + PING_TIMEOUT  # what a rejoin's catch-up may wait
CONFIRM = 2.0  # the subscriber's confirm_timeout
ROOM = "r"


@pytest_asyncio.fixture
async def node() -> AsyncIterator[tuple[Anywire, FaultProxy, RedisServer]]:
    redis = RedisServer(free_port())
    redis.start()
    proxy = FaultProxy(redis.port)
    subscriber = RedisSubscriber(f"redis://127.0.0.1:{proxy.port}/0", backoff_max=0.5,
                                 confirm_timeout=CONFIRM)  # fmt: skip
    broker = RedisBroker(redis.url, subscriber=subscriber, backoff_max=0.5)
    settings = Settings(ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT,
                        min_ping_interval=PING_INTERVAL)  # fmt: skip
    aw = Anywire(anonymous=True, secret=SECRET.encode(), broker=broker, settings=settings)
    await aw.start()
    try:
        yield aw, proxy, redis
    finally:
        proxy.close()
        await aw.stop(grace=0.1)
        redis.kill()


async def _until(what: str, check: object, timeout: float) -> None:
    """Wait (polling the loop, bounded) until ``check()`` is true."""
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("info", [WEBSOCKET, SSE, LONGPOLL], ids=lambda i: i.name)
async def test_a_rejoin_is_answered_while_the_subscription_is_black_holed(
    node: tuple[Anywire, FaultProxy, RedisServer], info: TransportInfo
) -> None:
    aw, proxy, _ = node
    # The room has history (published with nobody subscribed here: Redis keeps it).
    first = await aw.emit("tick", 1, room=ROOM)
    for i in (2, 3):
        await aw.emit("tick", i, room=ROOM)
    _, epoch, _ = first
    issued = await issue(aw)
    link = Link(info, aw.host.codec("json"))
    await aw.host.attach(link, Connect(issued.ticket))
    assert frames(aw, link)[0]["t"] == "hello"
    # The pub/sub connection stays open, and from now on nothing passes either way.
    proxy.set("blackhole")
    sent: list[dict[str, object]] = []

    def answered() -> bool:
        sent.extend(frames(aw, link))
        return any(f["t"] == "ack" and f.get("id") == 7 for f in sent)

    aw.host.feed(issued.sid, [Join(s=1, id=7, r=ROOM, since=(epoch, 1))])
    # Before the fix: never answered (the join waited for a confirmation for good).
    await _until("the join's answer", answered, PATIENCE + 10)
    ack = next(f for f in sent if f["t"] == "ack" and f.get("id") == 7)
    assert ack["ok"] is True, ack
    body = ack["d"]
    assert body["room"] == ROOM
    # Unconfirmed subscription: whatever followed tick 1 may never reach this node, so
    # the client is told (from 2, count unknown) rather than left waiting.
    assert body["recovered"] is False
    lost = [f for f in sent if f.get("e") == "$lost"]
    assert [(x["d"]["epoch"], x["d"]["from"]) for x in lost] == [(epoch, 2)], sent
    # The connection that never confirmed was given up: once Redis is reachable again
    # the node subscribes anew, and the room's next event reaches the session live.
    proxy.set("forward")
    await _until("the pub/sub connection replaced", lambda: aw.broker.state() == "ok", 15)
    await aw.emit("tick", 4, room=ROOM)
    await _until("tick 4", lambda: answered() and any(f.get("d") == 4 for f in sent), 10)
    ticks = [f["d"] for f in sent if f.get("e") == "tick"]
    assert ticks == [4], sent  # 2 and 3 are inside the $lost; nothing twice
    assert len([f for f in sent if f.get("e") == "$lost"]) == 1, sent
