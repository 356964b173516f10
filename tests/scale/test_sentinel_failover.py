"""The Redis broker on Sentinel: the primary SIGKILLed mid-run, with writes it
acknowledged that its replica never got (the replica SIGSTOPped and its link cut
meanwhile, so Redis's asynchronous replication loses them for certain).

After the failover the broker publishes on the new primary; the stream's offset counter
there is behind, so without the failover stamp (redis_scripts.py) the next publishes
would reuse offsets already delivered and be dropped as duplicates, silently. The
invariant checked: every event published is delivered exactly once, in order, or falls
in a ``$lost`` announced before the first event after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from anywire.errors import BrokerUnavailable
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker
from tests.rediscluster import Sentinels, start_sentinel

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def sentinel() -> Iterator[Sentinels]:
    setup = start_sentinel()
    yield setup
    setup.cleanup()


class Ledger:
    """What was published (acknowledged) and what was delivered, in order."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.delivered: list[Envelope] = []
        self.changed = asyncio.Event()

    def deliver(self, env: Envelope) -> None:
        self.delivered.append(env)
        self.changed.set()

    def ids(self) -> list[int]:
        return [int(e.data["i"]) for e in self.delivered if e.event == "tick"]

    async def until(self, check: Any, timeout: float, what: str) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    def explain(self) -> list[str]:
        """Every difference between published and delivered that nothing explains."""
        problems = []
        ids = self.ids()
        if ids != sorted(set(ids)):
            problems.append(f"out of order or duplicated: {ids}")
        seen = set(ids)
        for i in self.acked:
            if i in seen:
                continue
            # Missing: a $lost must come after the last delivered before it and before
            # the first delivered after it.
            before = [j for j in ids if j < i]
            after = [j for j in ids if j > i]
            start = self.index_of(before[-1]) if before else -1
            end = self.index_of(after[0]) if after else len(self.delivered)
            lost = [e for e in self.delivered[start + 1 : end] if e.event == "$lost"]
            if not lost:
                problems.append(f"event {i} missing with no $lost announced")
        return problems

    def index_of(self, i: int) -> int:
        return next(
            n for n, e in enumerate(self.delivered) if e.event == "tick" and e.data["i"] == i
        )


STREAM = "room:/:failover"
"""The stream the tests publish on (a broker receives it once it wants it)."""


async def publish(broker: RedisBroker, ledger: Ledger, i: int, timeout: float = 30.0) -> None:
    """Publish event ``i``, retrying (same idempotency key) while Redis fails over."""
    async with asyncio.timeout(timeout):
        while True:
            env = Envelope("room", "/", "failover", "tick", {"i": i}, key=f"k{i}")
            try:
                await broker.publish(env)
            except BrokerUnavailable:
                await asyncio.sleep(0.1)
                continue
            ledger.acked.append(i)
            return


async def test_failover_loses_nothing_silently(sentinel: Sentinels) -> None:
    ledger = Ledger()
    broker = RedisBroker(sentinel.url, heartbeat=0.5, backoff_max=0.5)
    await broker.start(ledger.deliver)
    await broker.want(STREAM, "ledger")  # interest routing: it consumes the stream
    try:
        for i in range(1, 11):
            await publish(broker, ledger, i)
        await ledger.until(lambda: len(ledger.ids()) == 10, 10, "the first 10")
        # These are acknowledged by the primary and never reach the replica: it is
        # stopped and its link cut (what was sent before would still be in its socket).
        sentinel.replica.stop()
        sentinel.primary.cli("client", "kill", "type", "replica")
        for i in range(11, 16):
            await publish(broker, ledger, i)
        await ledger.until(lambda: len(ledger.ids()) == 15, 10, "the 5 unreplicated ones")
        old = sentinel.primary
        old.kill()
        sentinel.replica.cont()
        new = sentinel.wait_failover(old.port)
        assert new is sentinel.replica
        assert int(new.cli("get", "aw:{room:/:failover}:n")) == 10, "the 5 writes are lost"
        for i in range(16, 26):
            await publish(broker, ledger, i)
        await ledger.until(lambda: 25 in ledger.ids(), 30, "the events after the failover")
    finally:
        await broker.stop()
    assert ledger.explain() == []
    assert ledger.ids() == list(range(1, 26))
    lost = [e for e in ledger.delivered if e.event == "$lost"]
    assert len(lost) == 1, "one $lost: the old epoch's tail, after the failover"
    assert ledger.delivered.index(lost[0]) == ledger.index_of(16) - 1
    old_epoch = ledger.delivered[0].pos[1]  # type: ignore[index]
    new_epoch = ledger.delivered[-1].pos[1]  # type: ignore[index]
    assert new_epoch != old_epoch, "a new epoch on the new primary"
