"""Two brokers on a Redis Cluster (3 masters + 3 replicas); the master holding the
stream's slot SIGKILLed mid-run while the first broker publishes. The cluster promotes
its replica; the publisher goes on (retrying with the same idempotency key while the
slot has no master), and the second broker delivers every event exactly once in order
or inside a ``$lost`` (the failover stamp starts a new epoch on the new master: acked
writes its replica lacked cannot come back under reused offsets). A node request still
reaches the other broker afterwards (its shard channel was resubscribed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from anywire.errors import BrokerUnavailable
from anywire.publisher import AsyncPublisher, Publisher
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker
from tests.rediscluster import Cluster, start_cluster
from tests.scale.conftest import wait_for

from .test_sentinel_failover import STREAM, Ledger, publish

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    started = start_cluster(masters=3, replicas=1)
    yield started
    started.cleanup()


async def test_a_master_killed_mid_run(cluster: Cluster) -> None:
    ledger = Ledger()
    a = RedisBroker(cluster.url, heartbeat=0.5, backoff_max=0.5)
    b = RedisBroker(cluster.url, heartbeat=0.5, backoff_max=0.5)

    async def answer(message: dict[str, Any]) -> dict[str, Any]:
        return {"pong": message["n"]}

    b.on_request = answer
    await a.start(lambda env: None)
    await b.start(ledger.deliver)
    await b.want(STREAM, "ledger")  # interest routing: b consumes the stream
    try:
        assert await a.request(b.node_id, {"n": 1}, 5.0) == {"pong": 1, "id": 1}
        slot = a.redis.keyslot("aw:{room:/:failover}:h")
        victim = cluster.slot_owner(slot)
        for i in range(1, 21):
            await publish(a, ledger, i)
        await ledger.until(lambda: len(ledger.ids()) == 20, 10, "the first 20")
        cluster.by_port(victim).kill()
        publishing = asyncio.ensure_future(_publish_range(a, ledger, 21, 61))
        await asyncio.wait_for(publishing, 60)
        await ledger.until(lambda: 60 in ledger.ids(), 30, "the last event")
        assert cluster.slot_owner(slot) != victim
        async with asyncio.timeout(20):
            while True:  # b's node channel is placed again on its shard's new master
                try:
                    reply = await a.request(b.node_id, {"n": 2}, 2.0)
                    break
                except (BrokerUnavailable, TimeoutError):  # not placed yet: ask again
                    await asyncio.sleep(0.2)
        assert reply["pong"] == 2
    finally:
        await a.stop()
        await b.stop()
    assert ledger.explain() == []
    ids = ledger.ids()
    assert ids == sorted(set(ids)) and ids[-1] == 60
    assert len([e for e in ledger.delivered if e.event == "$lost"]) <= 1
    # The new master is another primary than the stream's last: a new epoch.
    assert ledger.delivered[0].pos[1] != ledger.delivered[-1].pos[1]  # type: ignore[index]


async def test_a_lone_publisher_follows_the_promotion(cluster: Cluster) -> None:
    """A client that only publishes (an AsyncPublisher: no heartbeat, no subscriber, no
    other command whose failure would make redis-py refresh its slot map) publishes again
    once the master of its stream's slot is SIGKILLed and its replica promoted: the
    refused connection to the dead master refreshes the slot map. Without that the
    pipelined path (redis_cluster_batch.py) dialled the dead address for ever, which is
    how test_a_master_killed_mid_run failed when none of its broker's own keys lived on
    the killed master."""
    publisher = AsyncPublisher(cluster.url, timeout=2.0)
    try:
        first = await publisher.emit("e", 1, room="alone")
        slot = publisher.redis.keyslot("aw:{room:/:alone}:h")
        victim = cluster.slot_owner(slot)
        cluster.by_port(victim).kill()

        def promoted() -> bool:
            try:
                return cluster.slot_owner(slot) != victim
            except LookupError:  # the dead master marked failed, no replica promoted yet
                return False

        # The promotion happens first, so the publisher's refresh cannot race it and the
        # test asks one thing: does the publisher ever look at the slot map again.
        await asyncio.to_thread(wait_for, promoted, 30, "the replica to be promoted")
        # After the promotion one refused publish refreshes the map and the next one
        # goes to the new master; the bound is only room for a loaded machine.
        async with asyncio.timeout(15):
            while True:
                try:
                    second = await publisher.emit("e", 2, room="alone")
                    break
                except BrokerUnavailable:  # the dead master's old connection, or refused
                    await asyncio.sleep(0.1)
        # Published on the promoted master, in a new epoch (the stamp names another
        # primary), and only once.
        assert second[1] != first[1] and second[2] == 1
    finally:
        await publisher.aclose()


async def _publish_range(broker: RedisBroker, ledger: Ledger, first: int, end: int) -> None:
    for i in range(first, end):
        await publish(broker, ledger, i, timeout=45)


@pytest.fixture
def plain_cluster() -> Iterator[Cluster]:
    started = start_cluster(masters=3)
    yield started
    started.cleanup()


async def test_the_streams_slot_resharded_mid_run(plain_cluster: Cluster) -> None:
    """The slot of the stream moved to another master (IMPORTING/MIGRATING, MIGRATE of its
    keys, SETSLOT NODE: what ``redis-cli --cluster reshard`` does) while one broker
    publishes; redis-py follows ASK/MOVED, the other broker delivers every event once in
    order or inside a ``$lost`` (the stamp moves with the keys and names the old master:
    one new epoch, see docs/scaling.md)."""
    cluster = plain_cluster
    ledger = Ledger()
    a = RedisBroker(cluster.url, heartbeat=0.5, backoff_max=0.5)
    b = RedisBroker(cluster.url, heartbeat=0.5, backoff_max=0.5)
    await a.start(lambda env: None)
    await b.start(ledger.deliver)
    await b.want(STREAM, "ledger")  # interest routing: b consumes the stream
    try:
        slot = a.redis.keyslot("aw:{room:/:failover}:h")
        src = cluster.slot_owner(slot)
        dst = next(p for p in cluster.masters() if p != src)
        for i in range(1, 51):
            await publish(a, ledger, i)
        publishing = asyncio.ensure_future(_publish_range(a, ledger, 51, 2001))
        await ledger.until(lambda: 100 in ledger.ids(), 10, "publishing under way")
        await asyncio.to_thread(cluster.move_slot, slot, dst)
        assert not publishing.done(), "the slot moved while publishes went on"
        await asyncio.wait_for(publishing, 60)
        await ledger.until(lambda: 2000 in ledger.ids(), 30, "the last event")
        assert cluster.slot_owner(slot) == dst
        assert int(cluster.by_port(dst).cli("get", "aw:{room:/:failover}:n")) > 0
    finally:
        await a.stop()
        await b.stop()
    assert ledger.explain() == []
    ids = ledger.ids()
    assert ids == sorted(set(ids)) and ids[-1] == 2000
    assert len([e for e in ledger.delivered if e.event == "$lost"]) <= 1


async def test_a_publish_to_a_migrating_slot_follows_ask(plain_cluster: Cluster) -> None:
    """A stream whose slot is being migrated: while its keys are split between the two
    masters Redis answers TRYAGAIN (not published, says the error); once they have all
    moved the source answers ASK, and the broker and the Publisher send ASKING and the
    script to the target: published there once (in a new epoch: the stamp names the
    source master)."""
    cluster = plain_cluster
    a = RedisBroker(cluster.url)
    await a.start(lambda env: None)
    publisher = Publisher(cluster.url)
    base = "aw:{room:/:asked}"
    try:
        slot = a.redis.keyslot(f"{base}:h")
        src = cluster.slot_owner(slot)
        dst = next(p for p in cluster.masters() if p != src)
        first = await a.publish(Envelope("room", "/", "asked", "e", 1))
        assert first[2] == 1
        source = cluster.begin_move(slot, dst)

        def migrate(*keys: str) -> None:
            source.cli("migrate", "127.0.0.1", str(dst), "", "0", "5000", "keys", *keys)

        migrate(f"{base}:h")  # the stream's keys now on two masters
        with pytest.raises(BrokerUnavailable) as refused:
            await a.publish(Envelope("room", "/", "asked", "e", 2))
        assert refused.value.maybe_published is False
        migrate(f"{base}:e", f"{base}:n", f"{base}:r")
        moved = await a.publish(Envelope("room", "/", "asked", "e", 2))
        # Run on the target, whose stamp check starts a new epoch (a resharding's cost).
        assert moved[1] != first[1] and moved[2] == 1
        assert publisher.emit("e", 3, room="asked")[1:] == (moved[1], 2)
        cluster.finish_move(slot, dst)
        assert cluster.by_port(dst).cli("get", f"{base}:n").strip() == "2"
    finally:
        publisher.close()
        await a.stop()


async def test_pipelined_publishes_while_a_slot_moves_and_scripts_are_flushed(
    plain_cluster: Cluster,
) -> None:
    """Bursts of 200 concurrent publishes over 8 rooms (one pipeline per master per
    batch: anywire/redis_cluster_batch.py) while one room's slot moves to another master,
    then after ``SCRIPT FLUSH`` on every master. Every publish that returned a position
    is delivered once, in issue order, to a second broker (or inside a ``$lost`` of the
    moved stream's new epoch); a refused one says ``maybe_published=False`` and was not
    published; the offsets of each epoch have no hole."""
    cluster = plain_cluster
    a = RedisBroker(cluster.url)
    b = RedisBroker(cluster.url)
    got: dict[str, list[int]] = {}
    lost: list[str] = []

    def deliver(env: Envelope) -> None:
        if env.event == "$lost":
            lost.append(str(env.data["stream"]))
        elif env.pos is not None:
            got.setdefault(env.pos[0], []).append(int(env.data))

    rooms = [f"pipe{k}" for k in range(8)]
    await a.start(lambda env: None)
    await b.start(deliver)
    sent: dict[str, list[tuple[str, int, int]]] = {}
    refused = 0

    async def burst(first: int) -> None:
        nonlocal refused
        envs = [Envelope("room", "/", rooms[i % 8], "e", i) for i in range(first, first + 200)]
        outs = await asyncio.gather(*(a.publish(e) for e in envs), return_exceptions=True)
        for env, out in zip(envs, outs, strict=True):
            if isinstance(out, BrokerUnavailable):
                assert out.maybe_published is False, out  # TRYAGAIN: keys split mid-move
                refused += 1
                continue
            assert not isinstance(out, BaseException), out
            sent.setdefault(out[0], []).append((out[1], out[2], int(env.data)))

    try:
        for room in rooms:
            await b.want(f"room:/:{room}", "test")
        slot = a.redis.keyslot("aw:{room:/:pipe0}:h")
        dst = next(p for p in cluster.masters() if p != cluster.slot_owner(slot))
        await burst(0)
        mover = asyncio.ensure_future(asyncio.to_thread(cluster.move_slot, slot, dst))
        n = 200
        while not mover.done() and n < 40_000:
            await burst(n)
            n += 200
        await mover
        await burst(n)
        for port in cluster.masters():
            cluster.by_port(port).cli("script", "flush")
        for _ in range(3):
            n += 200
            await burst(n)
        last = {stream: max(r[2] for r in rows) for stream, rows in sent.items()}
        async with asyncio.timeout(30):  # each stream's last event arrived (in order)
            while any(got.get(stream, [None])[-1] != i for stream, i in last.items()):
                await asyncio.sleep(0.05)
        assert cluster.slot_owner(slot) == dst
        assert a.counters["pipelined"] > a.counters["pipelines"]  # really pipelined
        # Calls sent again (answered MOVED, ASK or NOSCRIPT: not run the first time).
        assert a.counters["pipelined"] > a.counters["published"] + refused
        assert a.counters["noscript"] >= 1  # the flushed masters loaded it again
    finally:
        await a.stop()
        await b.stop()
    assert set(lost) <= {"room:/:pipe0"}, lost
    for stream, rows in sent.items():
        by_issue = sorted(rows, key=lambda r: r[2])
        epochs: dict[str, list[int]] = {}
        for epoch, offset, _ in by_issue:
            epochs.setdefault(epoch, []).append(offset)
        for offsets in epochs.values():  # in issue order, no hole, no repeat
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), stream
        want = [r[2] for r in by_issue]
        have = got.get(stream, [])
        assert have == sorted(set(have)), stream  # once, in order
        if stream not in lost:
            assert have == want, stream
        else:
            assert set(have) <= set(want), stream
