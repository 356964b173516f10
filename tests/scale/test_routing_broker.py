"""The Redis broker's routing against a real redis-server, in process: the join race with
a subscription whose confirmation is made slow on purpose, the batching of subscribes and
unsubscribes, and the linger.

The broker runs on a recording subscriber (:class:`SlowSubscriber`) that wraps the real
:class:`~anywire.server.redis_sub.RedisSubscriber`: it records every call and waits
``delay`` before it sends a ``SUBSCRIBE``, while a publisher sends events to the stream
without pause, so events really are published between a session's join and its
subscription's confirmation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from anywire.core.streams import room_stream
from anywire.publisher import AsyncPublisher
from anywire.redis_wire import stream_channel
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker
from anywire.server.catchup import catch_up
from anywire.server.redis_sub import RedisSubscriber

from .conftest import RedisServer


class SlowSubscriber:
    """A :class:`~anywire.server.redis_sub.Subscriber` that records its calls and sends
    each subscribe ``delay`` seconds late."""

    def __init__(self, inner: RedisSubscriber, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.subscribes: list[tuple[list[str], float, float]] = []  # channels, asked, done
        self.unsubscribes: list[list[str]] = []

    async def start(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_resubscribed: Callable[[list[str]], None],
        on_state: Callable[[str], None],
    ) -> None:
        await self.inner.start(on_message, on_resubscribed, on_state)

    async def subscribe(self, channels: Iterable[str]) -> None:
        chans = list(channels)
        asked = time.monotonic()
        if self.delay and any(c.endswith(":c") for c in chans):
            await asyncio.sleep(self.delay)  # the window: not subscribed yet
        await self.inner.subscribe(chans)
        self.subscribes.append((chans, asked, time.monotonic()))

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        chans = list(channels)
        self.unsubscribes.append(chans)
        await self.inner.unsubscribe(chans)

    async def stop(self) -> None:
        await self.inner.stop()

    def channels(self) -> set[str]:
        return self.inner.channels()


def numsub(redis: RedisServer, stream: str) -> int:
    return int(redis.cli("PUBSUB", "NUMSUB", stream_channel("aw", stream)).split()[1])


async def test_an_event_published_before_the_subscription_is_confirmed_is_read_once(
    redis: RedisServer,
) -> None:
    stream = room_stream("/", "slow-join")
    sub = SlowSubscriber(RedisSubscriber(redis.url), delay=0.3)
    live: list[int] = []

    def deliver(env: Envelope) -> None:
        if env.pos is not None and env.pos[0] == stream:
            live.append(env.pos[2])

    # History long enough for everything this test publishes (bounded at 20,000): a
    # trimmed range would be a $lost, not the race under test.
    broker = RedisBroker(redis.url, subscriber=sub, linger=0.2, history=25_000)
    await broker.start(deliver)
    pub = AsyncPublisher(redis.url, history=25_000)
    published: list[tuple[float, int]] = []  # (when, offset)
    stop = asyncio.Event()

    async def publish() -> None:
        for i in range(20_000):  # bounded
            if stop.is_set():
                return
            _, _, offset = await pub.emit("tick", i, room="slow-join")
            published.append((time.monotonic(), offset))

    try:
        _, epoch, first = await pub.emit("tick", -1, room="slow-join")
        task = asyncio.create_task(publish())
        while len(published) < 10:
            await asyncio.sleep(0.005)
        # A session joining with the position it holds (offset `first`): subscribe,
        # confirmed, read, seed (catchup.catch_up), while events keep going out.
        plan = await catch_up(broker, stream, (epoch, first), "s1")
        head = plan.position[1]
        while len(live) < 50 or live[-1] < head + 50:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        last = published[-1][1]
        while not live or live[-1] < last:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await pub.aclose()
        await broker.stop()
    _, asked, done = next(s for s in sub.subscribes if channels_have(s[0], stream))
    during = [off for when, off in published if asked <= when < done]
    assert len(during) >= 5, "the window was not real: nothing published during it"
    assert plan.lost == []
    read = [env.pos[2] for env in plan.items]
    assert read == list(range(first + 1, head + 1))  # everything up to the read, once
    after = [off for off in live if off > head]
    assert after == list(range(head + 1, last + 1))  # everything later live, once, in order
    assert live == sorted(set(live))  # the node delivered nothing twice
    # Nothing had to be filled from history: the subscription was confirmed before the
    # read, so no event fell between the two.
    assert broker.counters["filled"] == 0 and broker.counters["lost"] == 0


def channels_have(channels: list[str], stream: str) -> bool:
    return stream_channel("aw", stream) in channels


async def test_joins_of_one_turn_are_one_subscribe_and_leaves_linger_then_one_unsubscribe(
    redis: RedisServer,
) -> None:
    sub = SlowSubscriber(RedisSubscriber(redis.url))
    broker = RedisBroker(redis.url, subscriber=sub, linger=0.3)
    got: list[Any] = []
    await broker.start(got.append)
    rooms = [room_stream("/", f"batch-{i}") for i in range(50)]
    try:
        before = len(sub.subscribes)
        await asyncio.gather(*(broker.want(s, f"c{i}") for i, s in enumerate(rooms)))
        batches = sub.subscribes[before:]
        assert [sorted(b[0]) for b in batches] == [sorted(broker.channel(s) for s in rooms)]
        assert all(numsub(redis, s) == 1 for s in rooms)
        assert broker.channel_count() == 50
        # Wanted again by another consumer: nothing to subscribe.
        await broker.want(rooms[0], "other")
        assert len(sub.subscribes) == before + 1

        for i, s in enumerate(rooms):
            broker.unwant(s, f"c{i}")
        broker.forget("other")
        await asyncio.sleep(0.1)
        assert sub.unsubscribes == [] and broker.channel_count() == 50  # lingering
        # A consumer back within the linger keeps its stream without a resubscribe.
        await broker.want(rooms[1], "back")
        assert len(sub.subscribes) == before + 1
        async with asyncio.timeout(5):
            while not sub.unsubscribes:
                await asyncio.sleep(0.02)
        assert sorted(sub.unsubscribes[0]) == sorted(
            broker.channel(s) for s in rooms if s != rooms[1]
        )
        assert len(sub.unsubscribes) == 1
        assert numsub(redis, rooms[0]) == 0 and numsub(redis, rooms[1]) == 1
        assert broker.channel_count() == 1
    finally:
        await broker.stop()
