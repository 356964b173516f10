"""Kill Redis for 5 s and restart it (empty): nodes keep serving local traffic, report
the broker down, recover by themselves, and every message is either delivered or
reported (a failed publish to its sender, a ``$lost`` event to its receivers). One
outage serves every transport's run (tests/together.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from anywire.clients.python import Client
from anywire.clients.python.errors import AckError
from tests.e2e.conftest import TRANSPORTS, Server, make_token
from tests.together import Together

from .conftest import RedisServer
from .test_broadcast import Inbox


def _health(node: Server) -> dict[str, Any]:
    return dict(httpx.get(node.url + "/anywire/health", timeout=5).json())


async def _wait_health(nodes: list[Server], state: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(_health(n)["broker"] == state for n in nodes):
        assert time.monotonic() < deadline, f"nodes never reported broker {state!r}"
        await asyncio.sleep(0.1)


OUTAGE = 5.0  # seconds Redis stays down once every node reports it


@dataclass
class Seen:
    """One transport's run: what its sender was told, what its receiver got."""

    sent_ok: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    got: list[int] = field(default_factory=list)
    lost: list[Any] = field(default_factory=list)


class Outage:
    """One Redis outage under a sender and a receiver on every transport (own users and
    room each): the runs publish before, during and after it, and each test asserts on
    its own transport's run. The outage is global to the module's Redis, so one outage
    serves the three transports instead of one each."""

    def __init__(self, nodes: list[Server], redis: RedisServer) -> None:
        self.nodes, self.redis = nodes, redis
        self.joined = {t: asyncio.Event() for t in TRANSPORTS}
        self.down, self.over, self.back = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.driver: asyncio.Task[None] | None = None

    async def run(self, transport: str) -> Seen:
        if self.driver is None:
            self.driver = asyncio.ensure_future(self._drive())
        room = f"outage-{transport}"
        a = Client(self.nodes[0].url, make_token(f"oa-{transport}"), transports=(transport,))
        b = Client(self.nodes[1].url, make_token(f"ob-{transport}"), transports=(transport,))
        inbox = Inbox(b, "m", "$lost")
        seen = Seen()
        seq = 0

        async def publish() -> None:
            nonlocal seq
            seq += 1
            try:
                await a.call("to_room", {"room": room, "event": "m", "data": seq}, timeout=5)
                seen.sent_ok.append(seq)
            except AckError:
                seen.refused.append(seq)  # the sender is told: the publish did not happen

        async with a, b:
            await a.join(room)
            await b.join(room)
            for _ in range(10):
                await publish()
            self.joined[transport].set()
            await self.down.wait()
            while not self.over.is_set():  # bounded by the driver: the outage
                await publish()
                assert await a.call("echo", "local", timeout=5) == "local"  # local traffic
                await asyncio.sleep(0.1)
            await self.back.wait()
            for _ in range(10):
                await publish()
            last = seen.sent_ok[-1]
            await inbox.until(lambda: last in inbox.of("m"), 15)
        seen.got, seen.lost = inbox.of("m"), inbox.of("$lost")
        return seen

    async def _drive(self) -> None:
        for joined in self.joined.values():
            await joined.wait()
        self.redis.kill()
        try:
            await _wait_health(self.nodes, "down")
            self.down.set()
            await asyncio.sleep(OUTAGE)  # the outage itself, not a wait for anything
            self.over.set()
        finally:
            self.redis.start()
        await _wait_health(self.nodes, "ok")
        self.back.set()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def outage(nodes: list[Server], redis: RedisServer) -> AsyncIterator[Together[Seen]]:
    together = Together(TRANSPORTS, Outage(nodes, redis).run)
    yield together
    await together.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_redis_outage_every_message_delivered_or_reported(
    outage: Together[Seen], transport: str
) -> None:
    seen = await outage.result(transport, 90)
    got, lost = seen.got, seen.lost
    assert seen.refused, "publishes during the outage must be refused to their sender"
    assert got == sorted(set(got)), "no duplicates, in order"
    missing = [i for i in seen.sent_ok if i not in got]
    # Redis restarted empty: what the old history held after b's position is reported.
    assert not missing or lost, f"{missing} neither delivered nor reported"
    # Redis came back empty: the room's old epoch is gone, and b is told so (count
    # unknown), never left to assume its stream is complete.
    room = f"outage-{transport}"
    assert lost and all(x["room"] == room and x["to"] is None for x in lost)
    assert len({x["epoch"] for x in lost}) == 1
    assert got[-10:] == seen.sent_ok[-10:]


async def test_dropped_subscriptions_are_filled_from_history_exactly_once(
    nodes: list[Server], redis: RedisServer, transport: str
) -> None:
    """Redis drops every node's subscription again and again while a room streams: the
    gaps are filled from the room's history, in order, nothing twice, nothing lost."""
    room = f"blips-{transport}"
    a = Client(nodes[0].url, make_token(f"ba-{transport}"), transports=(transport,))
    b = Client(nodes[1].url, make_token(f"bb-{transport}"), transports=(transport,))
    inbox = Inbox(b, "m", "$lost")
    await _wait_health(nodes, "ok")
    before = _metric(nodes, "broker_reconnects")
    filled = _metric(nodes, "broker_filled")
    async with a, b:
        await a.join(room)
        await b.join(room)
        total = 150
        for i in range(total):
            await a.call("to_room", {"room": room, "event": "m", "data": i})
            if i % 30 == 15:
                redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        await inbox.until(lambda: len(inbox.of("m")) >= total, 15)
        assert inbox.of("m") == list(range(total))
        assert inbox.of("$lost") == []
    assert _metric(nodes, "broker_reconnects") >= before + 2  # subscriptions really dropped
    # The next publish after each kill came while the subscribers were away: those
    # offsets can only have come back from history.
    assert _metric(nodes, "broker_filled") > filled


def _metric(nodes: list[Server], name: str) -> int:
    return sum(int(httpx.get(n.url + "/anywire/metrics").json()[name]) for n in nodes)
