"""Two nodes behind round-robin nginx on Sentinel; the primary SIGKILLed while events
stream to a client on each transport (all three at once: one failover). The
AsyncPublisher retries with the same ``id=`` while Redis fails over. Each client's
record is checked by the invariant: every event acknowledged by Redis arrives once and
in order, or falls inside a ``$lost`` it was told of; the stream goes on afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from anywire.clients.python import Client
from anywire.errors import BrokerUnavailable
from anywire.publisher import AsyncPublisher
from tests.e2e.conftest import TRANSPORTS, Server, make_token
from tests.rediscluster import Sentinels, start_sentinel
from tests.together import Together

from .conftest import Nginx, start_nginx, start_nodes

pytestmark = pytest.mark.timeout(180)

TOTAL = 120
KILL_AT = 40


@pytest.fixture(scope="module")
def sentinel() -> Iterator[Sentinels]:
    setup = start_sentinel()
    yield setup
    setup.cleanup()


@pytest.fixture(scope="module")
def rr(sentinel: Sentinels) -> Iterator[tuple[Nginx, list[Server]]]:
    nodes = start_nodes(sentinel)
    ngx = start_nginx("round-robin.conf", [n.port for n in nodes])
    yield ngx, nodes
    ngx.stop()
    for node in nodes:
        node.stop()


@dataclass
class Record:
    """One client's events, in arrival order, and what Redis acknowledged."""

    transport: str
    items: list[tuple[str, Any]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def ticks(self) -> list[int]:
        return [int(d) for e, d in self.items if e == "tick"]

    def unexplained(self) -> list[str]:
        ticks = self.ticks()
        problems = [] if ticks == sorted(set(ticks)) else [f"order/duplicates: {ticks}"]
        seen = set(ticks)
        for i in self.acked:
            if i in seen:
                continue
            # Missing: a $lost must arrive between its neighbours.
            before = max((n for n, (e, d) in enumerate(self.items)
                          if e == "tick" and int(d) < i), default=-1)  # fmt: skip
            after = min((n for n, (e, d) in enumerate(self.items)
                         if e == "tick" and int(d) > i), default=len(self.items))  # fmt: skip
            if not any(e == "$lost" for e, _ in self.items[before + 1 : after]):
                problems.append(f"tick {i} missing without a $lost")
        return problems


def _recorder(record: Record, name: str) -> Any:
    def received(data: Any) -> None:  # one parameter: the client passes the data only
        record.items.append((name, data))

    return received


class Failover:
    """Clients on every transport, one publisher, one SIGKILL of the primary."""

    def __init__(self, sentinel: Sentinels, ngx: Nginx) -> None:
        self.sentinel, self.ngx = sentinel, ngx
        self.joined = {t: asyncio.Event() for t in TRANSPORTS}
        self.finished = asyncio.Event()
        self.records = {t: Record(t) for t in TRANSPORTS}
        self.driver: asyncio.Task[None] | None = None

    async def run(self, transport: str) -> Record:
        if self.driver is None:
            self.driver = asyncio.ensure_future(self._drive())
        record = self.records[transport]
        client = Client(self.ngx.url, make_token(f"fo-{transport}"), transports=(transport,),
                        backoff_base=0.05, backoff_max=0.5)  # fmt: skip
        for name in ("tick", "$lost"):
            client.on(name)(_recorder(record, name))
        async with client:
            await client.join(f"fo-{transport}")
            self.joined[transport].set()
            await self.finished.wait()
            with contextlib.suppress(TimeoutError):  # the assertions say what is missing
                async with asyncio.timeout(30):
                    while TOTAL - 1 not in record.ticks():
                        await asyncio.sleep(0.05)
        return record

    async def _drive(self) -> None:
        for event in self.joined.values():
            await event.wait()
        publisher = AsyncPublisher(self.sentinel.url, timeout=2.0)
        try:
            for i in range(TOTAL):
                if i == KILL_AT:
                    self.sentinel.primary.kill()
                for transport in TRANSPORTS:
                    await self._publish(publisher, transport, i)
                await asyncio.sleep(0.01)  # a stream, not a burst: the kill lands mid-run
        finally:
            await publisher.aclose()
            self.finished.set()

    async def _publish(self, publisher: AsyncPublisher, transport: str, i: int) -> None:
        async with asyncio.timeout(60):
            while True:
                try:
                    await publisher.emit("tick", i, room=f"fo-{transport}", id=f"t{i}")
                except BrokerUnavailable:
                    await asyncio.sleep(0.1)  # failing over: the same id= again
                    continue
                self.records[transport].acked.append(i)
                return


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def failover(
    sentinel: Sentinels, rr: tuple[Nginx, list[Server]]
) -> AsyncIterator[Together[Record]]:
    runs = Failover(sentinel, rr[0])
    together = Together(TRANSPORTS, runs.run)
    yield together
    await together.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_a_primary_killed_mid_stream(
    failover: Together[Record], sentinel: Sentinels, transport: str
) -> None:
    record = await failover.result(transport, 150)
    assert record.acked == list(range(TOTAL))
    assert record.unexplained() == []
    assert record.ticks()[-1] == TOTAL - 1
    assert sentinel.master_port() == sentinel.replica.port
