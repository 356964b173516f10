"""Batched publishes (anywire/redis_batch.py) on a real redis-server: concurrent publishes
from many tasks keep every per-call guarantee of one awaited script.

Offsets of each stream contiguous, each caller's publishes in its order, publishes issued
together to one stream in the order issued, every event delivered once and in order to a
second node; ``id=`` retries inside one pipeline and across pipelines; a Redis SIGKILLed
with a pipeline in flight (every caller: ``maybe_published=True``, a retry by ``id=``
publishes once), a SIGSTOPped Redis (every caller answered within the timeout, those never
sent with ``maybe_published=False``), and ``SCRIPT FLUSH`` between pipelines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from anywire.core.frames import StreamPos
from anywire.core.streams import room_stream
from anywire.errors import BrokerUnavailable
from anywire.publisher import AsyncPublisher, Publisher
from anywire.redis_batch import PublishBatcher
from anywire.redis_wire import pack, publish_call
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker
from tests.netfault import FaultProxy
from tests.scale.conftest import RedisServer, wait_for
from tests.scale.test_publisher_outage import _unread_bytes, redis  # noqa: F401 (a fixture)


class Received:
    """What the subscribing node delivered: the offsets of each stream, in arrival order."""

    def __init__(self) -> None:
        self.offsets: dict[str, list[int]] = defaultdict(list)
        self.total = 0
        self.changed = asyncio.Event()

    def __call__(self, env: Envelope) -> None:
        if env.pos is not None and env.event == "e":
            self.offsets[env.pos[0]].append(env.pos[2])
            self.total += 1
            self.changed.set()

    async def until(self, total: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.total < total:
                self.changed.clear()
                await self.changed.wait()


def explain(published: dict[str, list[tuple[int, int]]], received: Received) -> list[str]:
    """Every difference from the guarantees, in words (empty: none). ``published``: per
    stream, (caller, offset) in the order each caller's publish returned."""
    problems: list[str] = []
    for stream, calls in published.items():
        offsets = sorted(off for _, off in calls)
        if offsets != list(range(offsets[0], offsets[0] + len(offsets))):
            problems.append(f"{stream}: offsets not contiguous or repeated: {offsets}")
        last: dict[int, int] = {}
        for caller, off in calls:
            if last.get(caller, 0) >= off:
                problems.append(f"{stream}: caller {caller} got {off} after {last[caller]}")
            last[caller] = off
        got = received.offsets.get(stream, [])
        if got != offsets:
            missing = sorted(set(offsets) - set(got))
            extra = sorted(set(got) - set(offsets))
            twice = sorted({o for o in got if got.count(o) > 1})
            problems.append(
                f"{stream}: delivered {len(got)} of {len(offsets)}: missing {missing}, "
                f"unexpected {extra}, twice {twice}, in order {got == sorted(got)}"
            )
    for stream in set(received.offsets) - set(published):
        problems.append(f"{stream}: delivered but never published")
    return problems


@pytest.fixture
async def pair(redis: RedisServer) -> AsyncIterator[tuple[RedisBroker, Received]]:  # noqa: F811
    """A publishing node and a subscribing node on the test's Redis."""
    received = Received()
    a, b = RedisBroker(redis.url), RedisBroker(redis.url)
    await a.start(lambda env: None)
    await b.start(received)
    # b hosts a consumer of every room these tests publish to: with interest routing a
    # node receives only the streams it hosts.
    for room in [*(f"r{i}" for i in range(20)), "one", "idem", "fl"]:
        await b.want(room_stream("/", room), "consumer")
    yield a, received
    await a.stop()
    await b.stop()


def env(room: str, data: object, key: str | None = None) -> Envelope:
    return Envelope("room", "/", room, "e", data, key=key)


@pytest.mark.parametrize("rooms", [1, 20])
async def test_concurrent_publishes_keep_every_guarantee(
    pair: tuple[RedisBroker, Received], rooms: int
) -> None:
    node, received = pair
    published: dict[str, list[tuple[int, int]]] = defaultdict(list)

    async def caller(c: int) -> None:
        for i in range(40):
            stream, _, off = await node.publish(env(f"r{(c + i) % rooms}", [c, i]))
            published[stream].append((c, off))

    await asyncio.gather(*(caller(c) for c in range(50)))
    await received.until(2000)
    assert explain(published, received) == []
    assert node.counters["largest_pipeline"] > 1  # batched


async def test_publishes_issued_together_get_offsets_in_issue_order(
    pair: tuple[RedisBroker, Received],
) -> None:
    node, received = pair
    for _ in range(3):
        tasks = [asyncio.ensure_future(node.publish(env("one", i))) for i in range(300)]
        positions = await asyncio.gather(*tasks)
        offsets = [p[2] for p in positions]
        assert offsets == list(range(offsets[0], offsets[0] + 300))
    await received.until(900)
    assert received.offsets["room:/:one"] == list(range(1, 901))


async def test_ids_inside_one_pipeline_and_across_pipelines(
    pair: tuple[RedisBroker, Received],
    redis: RedisServer,  # noqa: F811
) -> None:
    node, received = pair
    first = await asyncio.gather(
        *(node.publish(env("idem", i, key=f"k{i % 5}")) for i in range(50)),
        *(node.publish(env("idem", "free", key=None)) for _ in range(5)),
    )
    keyed: dict[str, StreamPos] = {}
    for i, pos in enumerate(first[:50]):
        assert keyed.setdefault(f"k{i % 5}", pos) == pos  # one position per key
    assert len(set(first)) == 10  # 5 keys, 5 without a key
    again = await asyncio.gather(*(node.publish(env("idem", 0, key=f"k{j}")) for j in range(5)))
    assert again == [keyed[f"k{j}"] for j in range(5)]  # a later pipeline: the same
    assert redis.cli("xlen", "aw:{room:/:idem}:h").strip() == "10"
    await received.until(10)
    assert received.offsets["room:/:idem"] == list(range(1, 11))


async def test_script_flush_between_pipelines(
    pair: tuple[RedisBroker, Received],
    redis: RedisServer,  # noqa: F811
) -> None:
    node, received = pair
    total = 0
    for round_ in range(3):
        redis.cli("script", "flush")
        positions = await asyncio.gather(*(node.publish(env("fl", i)) for i in range(100)))
        total += 100
        assert [p[2] for p in positions] == list(range(total - 99, total + 1)), round_
    assert node.counters["noscript"] >= 3
    await received.until(total)
    assert received.offsets["room:/:fl"] == list(range(1, total + 1))


async def test_redis_killed_with_a_pipeline_in_flight(redis: RedisServer) -> None:  # noqa: F811
    node = RedisBroker(redis.url)
    await node.start(lambda env: None)
    assert redis.proc is not None
    try:
        await node.publish(env("k", "warm"))
        os.kill(redis.proc.pid, signal.SIGSTOP)  # Redis takes the bytes, never answers
        tasks = [asyncio.ensure_future(node.publish(env("k", i, key=f"id{i}"))) for i in range(100)]
        await asyncio.to_thread(wait_for, lambda: _unread_bytes(redis.port) > 0, 10, "the batch")
        redis.proc.send_signal(signal.SIGKILL)
        redis.proc.wait(10)
        redis.proc = None
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
        assert all(isinstance(r, BrokerUnavailable) for r in results), results
        assert all(r.maybe_published for r in results if isinstance(r, BrokerUnavailable))
        redis.start()  # empty: the retries publish each event once
        retried = await asyncio.gather(
            *(node.publish(env("k", i, key=f"id{i}")) for i in range(100)),
            *(node.publish(env("k", i, key=f"id{i}")) for i in range(100)),
        )
        assert retried[:100] == retried[100:]
        assert sorted(p[2] for p in retried[:100]) == list(range(1, 101))
        assert redis.cli("xlen", "aw:{room:/:k}:h").strip() == "100"
    finally:
        await node.stop()


async def test_redis_stopped_every_caller_answered_within_its_bound(
    redis: RedisServer,  # noqa: F811
) -> None:
    client = aioredis.Redis.from_url(redis.url, socket_timeout=1.0)
    batcher = PublishBatcher(client, max_batch=5, max_queue=5, lanes=1, wait=0.5)
    assert redis.proc is not None
    t0 = time.monotonic()

    async def one(i: int) -> tuple[float, object]:
        body = pack("room", "/", "s", "e", i)
        call = publish_call("aw", "room:/:s", body, None, history=100, ttl=60, idempotency_ms=1)
        try:
            await batcher.run(call)
        except BrokerUnavailable as exc:
            return time.monotonic() - t0, exc.maybe_published
        return time.monotonic() - t0, "published"

    try:
        await one(-1)  # a connection, and the script loaded
        os.kill(redis.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        # 5 go in the first pipeline, 5 wait in the queue behind it, 5 find no room
        # (refused at once), and 5 issued later wait for room.
        first = [asyncio.ensure_future(one(i)) for i in range(15)]
        await asyncio.to_thread(wait_for, lambda: _unread_bytes(redis.port) > 0, 10, "a batch")
        late = [asyncio.ensure_future(one(i)) for i in range(15, 20)]  # the queue is full
        outcomes = await asyncio.wait_for(asyncio.gather(*first, *late), 10)
        sent, queued, refused, waited = (outcomes[i : i + 5] for i in range(0, 20, 5))
        # Sent: the reply is lost at the socket timeout. Not sent within the wait
        # (queued, or waiting for room): not published. No room at all: at once.
        assert all(flag is True and 1.0 <= took < 2.0 for took, flag in sent), sent
        assert all(flag is False and 0.5 <= took < 1.0 for took, flag in queued), queued
        assert all(flag is False and took < 0.5 for took, flag in refused), refused
        assert all(flag is False and 0.5 <= took < 1.5 for took, flag in waited), waited
        # Resumed, Redis runs what it had received: the 5 "maybe" ones, nothing else.
        os.kill(redis.proc.pid, signal.SIGCONT)
        ran = lambda: redis.cli("get", "aw:{room:/:s}:n").strip() == "6"  # noqa: E731
        await asyncio.to_thread(wait_for, ran, 10, "the 5 to run")
        assert redis.cli("xlen", "aw:{room:/:s}:h").strip() == "6"  # 1 before, 5 maybe
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
        await client.aclose()


# -- the external publishers ------------------------------------------------------------------
def test_publisher_emit_many_is_one_pipeline_in_item_order(redis: RedisServer) -> None:  # noqa: F811
    pub = Publisher(redis.url, timeout=2.0)
    try:
        items = [{"event": "e", "data": i, "room": f"m{i % 2}", "id": f"j{i}"} for i in range(40)]
        first = pub.emit_many(items)
        assert all(isinstance(p, tuple) for p in first), first
        for parity in (0, 1):
            assert [p[2] for p in first[parity::2]] == list(range(1, 21))  # type: ignore[index]
        assert pub.emit_many([*items[:3], items[0]]) == [*first[:3], first[0]]  # by id
        with pytest.raises(ValueError):
            pub.emit_many([{"event": "e", "room": "m0"}, {"event": "$bad", "room": "m0"}])
        assert redis.cli("xlen", "aw:{room:/:m0}:h").strip() == "20"  # nothing more
        redis.cli("script", "flush")
        again = pub.emit_many([{"event": "e", "room": "m0"}] * 3)
        assert [p[2] for p in again] == [21, 22, 23]  # type: ignore[index]
    finally:
        pub.close()


def test_publisher_emit_many_reply_lost_then_retried_publishes_once(
    redis: RedisServer,  # noqa: F811
) -> None:
    proxy = FaultProxy(redis.port)
    pub = Publisher(f"redis://127.0.0.1:{proxy.port}/0", timeout=0.5)
    items = [{"event": "e", "data": i, "room": "lost", "id": f"o{i}"} for i in range(30)]
    try:
        assert isinstance(pub.emit_many(items[:1])[0], tuple)  # a connection, the script
        proxy.set("oneway")  # Redis runs the pipeline; its replies never come back
        lost = pub.emit_many(items)
        assert all(isinstance(r, BrokerUnavailable) and r.maybe_published for r in lost), lost
        wait_for(lambda: redis.cli("get", "aw:{room:/:lost}:n").strip() == "30", 10, "the run")
        proxy.set("forward")
        retried = pub.emit_many(items)  # the documented retry: the same ids
        assert [p[2] for p in retried] == list(range(1, 31))  # type: ignore[index]
        assert redis.cli("xlen", "aw:{room:/:lost}:h").strip() == "30"  # published once
    finally:
        pub.close()
        proxy.close()


def test_publisher_emit_many_redis_killed_with_the_pipeline_in_flight(
    redis: RedisServer,  # noqa: F811
) -> None:
    pub = Publisher(redis.url, timeout=10.0)
    assert redis.proc is not None
    results: list[object] = []
    try:
        pub.emit("e", room="w")
        os.kill(redis.proc.pid, signal.SIGSTOP)
        items = [{"event": "e", "data": i, "room": "w"} for i in range(50)]
        thread = threading.Thread(target=lambda: results.extend(pub.emit_many(items)))
        thread.start()
        wait_for(lambda: _unread_bytes(redis.port) > 0, 10, "the pipeline")
        redis.proc.send_signal(signal.SIGKILL)
        redis.proc.wait(10)
        redis.proc = None
        thread.join(15)
        assert len(results) == 50
        assert all(isinstance(r, BrokerUnavailable) and r.maybe_published for r in results)
    finally:
        pub.close()


async def test_async_publisher_pipelines_emits_made_together(
    redis: RedisServer,  # noqa: F811
) -> None:
    pub = AsyncPublisher(redis.url, timeout=2.0)
    try:
        positions = await asyncio.gather(*(pub.emit("e", i, room="ap") for i in range(300)))
        assert [p[2] for p in positions] == list(range(1, 301))
        assert pub._batcher.counters["largest_pipeline"] > 1
        many = await pub.emit_many([{"event": "e", "room": "ap", "id": "x"}] * 3)
        assert many == [("room:/:ap", positions[0][1], 301)] * 3
    finally:
        await pub.aclose()


async def test_pipelines_hold_at_most_max_batch(redis: RedisServer) -> None:  # noqa: F811
    client = aioredis.Redis.from_url(redis.url, socket_timeout=5.0)
    batcher = PublishBatcher(client, max_batch=100)

    async def one(i: int) -> int:
        body = pack("room", "/", "mb", "e", i)
        call = publish_call("aw", "room:/:mb", body, None, history=1000, ttl=60, idempotency_ms=1)
        return int((await batcher.run(call))[1])

    try:
        offsets = await asyncio.gather(*(one(i) for i in range(350)))
        assert offsets == list(range(1, 351))
        assert batcher.counters["largest_pipeline"] == 100
        assert batcher.counters["pipelines"] == 4 and batcher.counters["pipelined"] == 350
    finally:
        await client.aclose()
