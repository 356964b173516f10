"""The sharded subscriber against a real Redis Cluster (3 masters + 3 replicas).

Channels spread over every master are received; a slot moved to another master mid-run
and a master SIGKILLed (its replica promoted) both end with the channels subscribed
again and named by ``on_resubscribed`` (the broker's fill covers what was published
meanwhile), and events published afterwards arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from anywire.redis_connect import command_client, parse
from anywire.server.redis_cluster_sub import ClusterSubscriber
from tests.rediscluster import Cluster, start_cluster

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = start_cluster(masters=3, replicas=1)
    yield started
    started.cleanup()


class Recorder:
    """What the subscriber reported, with a wake-up on each report."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.resubscribed: list[str] = []
        self.reports: list[list[str]] = []
        self.states: list[str] = []
        self.changed = asyncio.Event()

    def message(self, channel: bytes, data: bytes) -> None:
        self.messages.append((channel.decode(), data))
        self.changed.set()

    def again(self, channels: list[str]) -> None:
        self.reports.append(list(channels))
        self.resubscribed += channels
        self.changed.set()

    def state(self, state: str) -> None:
        self.states.append(state)
        self.changed.set()

    async def until(self, check: object, timeout: float, what: str) -> None:
        async with asyncio.timeout(timeout):
            while not check():  # type: ignore[operator]
                self.changed.clear()
                try:
                    async with asyncio.timeout(0.5):
                        await self.changed.wait()
                except TimeoutError:
                    pass  # re-check (the cluster's state, not only our reports)
        assert check(), what  # type: ignore[operator]


@pytest.fixture
async def sub(cluster: Cluster) -> AsyncIterator[tuple[ClusterSubscriber, Recorder, object]]:
    client = command_client(parse(cluster.url))
    subscriber = ClusterSubscriber(client, health=0.5)  # type: ignore[arg-type]
    rec = Recorder()
    await subscriber.start(rec.message, rec.again, rec.state)
    yield subscriber, rec, client
    await subscriber.stop()
    await client.aclose()


def channels(n: int, tag: str) -> list[str]:
    # The routing branch's form: the stream's hash tag, so the stream's slot.
    return [f"aw:{{room:/:{tag}{i}}}:c" for i in range(n)]


async def test_channels_on_every_master_are_received(sub: tuple, cluster: Cluster) -> None:
    subscriber, rec, client = sub
    names = channels(30, "spread")
    await subscriber.subscribe(names)
    placed = subscriber.placed()
    assert set(placed) == set(names)
    masters = {f"127.0.0.1:{port}" for port in cluster.masters()}
    assert set(placed.values()) == masters, "30 channels should land on all 3 masters"
    for i, name in enumerate(names):
        assert await client.spublish(name, f"m{i}".encode()) == 1
    await rec.until(lambda: len(rec.messages) >= 30, 10, "every message")
    assert sorted(rec.messages) == sorted((n, f"m{i}".encode()) for i, n in enumerate(names))
    # Unsubscribed: nobody listens on that shard any more.
    await subscriber.unsubscribe(names[:5])
    await rec.until(
        lambda: all(not subscriber.placed().get(n) for n in names[:5]), 5, "unsubscribed"
    )

    async def listeners(name: str) -> int:
        return int(await client.spublish(name, b"late"))

    async def none_left() -> bool:
        return all([await listeners(n) == 0 for n in names[:5]])

    async with asyncio.timeout(5):
        while not await none_left():
            await asyncio.sleep(0.05)
    assert subscriber.channels() == set(names[5:])


async def test_a_moved_slot_is_resubscribed_and_reported(sub: tuple, cluster: Cluster) -> None:
    subscriber, rec, client = sub
    names = channels(6, "moving")
    await subscriber.subscribe(names)
    moving = names[0]
    slot = client.keyslot(moving)
    src = cluster.slot_owner(slot)
    dst = next(p for p in cluster.masters() if p != src)
    staying = [n for n in names if cluster.slot_owner(client.keyslot(n)) != src]
    cluster.move_slot(slot, dst)
    await rec.until(lambda: moving in rec.resubscribed, 15, "on_resubscribed for the moved one")
    assert subscriber.placed()[moving] == f"127.0.0.1:{dst}"
    assert not set(staying) & set(rec.resubscribed), "only the moved slot's channels"
    await client.nodes_manager.initialize()
    assert await client.spublish(moving, b"after-move") == 1
    await rec.until(lambda: (moving, b"after-move") in rec.messages, 10, "after the move")


async def test_a_killed_master_is_failed_over_and_resubscribed(
    sub: tuple, cluster: Cluster
) -> None:
    subscriber, rec, client = sub
    names = channels(30, "failover")
    await subscriber.subscribe(names)
    victim_port = next(iter(cluster.masters()))
    victim = f"127.0.0.1:{victim_port}"
    on_victim = sorted(n for n, where in subscriber.placed().items() if where == victim)
    assert on_victim, "some channels live on the killed master"
    cluster.by_port(victim_port).kill()
    await rec.until(
        lambda: set(on_victim) <= set(rec.resubscribed), 40, "resubscribed after failover"
    )
    assert "down" in rec.states and rec.states[-1] == "ok"
    # Confirmations read together are reported together (one probe batch).
    assert max(len(r) for r in rec.reports) > 1, rec.reports
    moved_to = {subscriber.placed()[n] for n in on_victim}
    assert victim not in moved_to
    await client.nodes_manager.initialize()
    for name in on_victim:
        assert await client.spublish(name, b"after-failover") == 1
    await rec.until(
        lambda: sum(d == b"after-failover" for _, d in rec.messages) == len(on_victim),
        10, "every message after the failover",
    )  # fmt: skip


async def test_a_silent_master_is_found_by_ping(sub: tuple, cluster: Cluster) -> None:
    """SIGSTOP: the connection stays open and says nothing; the PING finds it, and the
    channels move to the replica the cluster promotes."""
    subscriber, rec, client = sub
    names = channels(30, "silent")
    await subscriber.subscribe(names)
    replicated = [
        port for port in cluster.masters()
        if int(cluster.by_port(port).info("replication").get("connected_slaves", "0")) > 0
    ]  # fmt: skip
    victim_port = replicated[0]
    victim = f"127.0.0.1:{victim_port}"
    on_victim = sorted(n for n, where in subscriber.placed().items() if where == victim)
    assert on_victim
    stopped = cluster.by_port(victim_port)
    stopped.stop()
    try:
        await rec.until(
            lambda: set(on_victim) <= set(rec.resubscribed), 40, "resubscribed elsewhere"
        )
        assert victim not in {subscriber.placed()[n] for n in on_victim}
        assert subscriber.counters["shard_lost"] >= 1
    finally:
        stopped.cont()
    await client.nodes_manager.initialize()
    for name in on_victim:
        assert await client.spublish(name, b"after-stop") == 1
    await rec.until(
        lambda: sum(d == b"after-stop" for _, d in rec.messages) == len(on_victim),
        10, "every message after the promotion",
    )  # fmt: skip
