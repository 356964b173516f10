"""A client whose session is lost (away longer than the resume window) gets every event of
its rooms once and in order afterwards, or a ``$lost`` for exactly what history no longer
holds; on every transport. Regressions of issue #12:

1. a rejoin resent from the lost session next to the client's own rejoin replayed the
   history twice (duplicates), seen with a slow join hook;
2. a rejoin whose answer took longer than the ack timeout was given up and its late
   answer (``recovered: false``) dropped: events vanished without a ``$lost``.

The client reaches the server through a TCP proxy that refuses every connection while the
test keeps it away; the join hook of ``slow<ms>-`` rooms takes that long (longer than the
client's ack timeout).

The test keeps a client away until its server counts one session fewer, so each
transport's run has a server (and a proxy) of its own: the three transports' runs then
go side by side (tests/together.py), each test asserting on its own run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from anywire.clients.python import Client, EventInfo
from tests.netfault import FaultProxy
from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token, spawn_server, start_servers

ROOM = "slow1500-loss"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    """One server per transport, started side by side. Short resume window (a lost
    session comes quickly), history of 5 events per stream (a longer absence loses
    something)."""
    env = {"AW_RESUME_WINDOW": "1.0", "AW_HISTORY": "5", "AW_POLL_WINDOW": "1.0"}
    started = start_servers([spawn_server(env) for _ in TRANSPORTS])
    yield dict(zip(TRANSPORTS, started, strict=True))
    for srv in started:
        srv.stop()


@dataclass
class Outcome:
    """One run's record and its (closed) client."""

    record: Record
    client: Client
    sid: str | None = None


Run = Callable[[Server, FaultProxy, str], Awaitable[Outcome]]


def _side_by_side(servers: dict[str, Server], run: Run) -> Together[Outcome]:
    """``run`` for every transport on its own server, through its own proxy."""

    async def one(transport: str) -> Outcome:
        proxy = FaultProxy(servers[transport].port)
        try:
            return await run(servers[transport], proxy, transport)
        finally:
            proxy.close()

    return Together(TRANSPORTS, one)


class Record:
    """Every ``n`` event with its offset, and every ``$lost``, in arrival order."""

    def __init__(self, client: Client) -> None:
        self.items: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        client.on("n")(self._event)
        client.on("$lost")(self._lost)

    def _event(self, data: Any, info: EventInfo) -> None:
        assert info.offset is not None
        self.items.append(("n", (data, info.offset[2])))
        self.changed.set()

    def _lost(self, data: Any) -> None:
        self.items.append(("$lost", data))
        self.changed.set()

    def offsets(self) -> list[int]:
        return [item[1] for kind, item in self.items if kind == "n"]

    def lost(self) -> list[dict[str, Any]]:
        return [d for kind, d in self.items if kind == "$lost"]

    async def until(self, check: Any, timeout: float = 15.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not check():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out; received {self.items}") from None


async def _publish(pub: Client, room: str, values: range) -> None:
    for i in values:
        await pub.call("publish", {"room": room, "event": "n", "data": i}, timeout=5)


async def _sessions(pub: Client) -> int:
    return int((await pub.call("stats", timeout=5))["sessions"])


async def _lose_session(pub: Client, proxy: FaultProxy, before: int) -> None:
    """Cut the client off until the server has forgotten its session (bounded)."""
    proxy.set("refuse")
    async with asyncio.timeout(15):
        while await _sessions(pub) >= before:
            await asyncio.sleep(0.1)


async def _rejoin_outlives_the_ack_timeout(
    server: Server, proxy: FaultProxy, transport: str
) -> Outcome:
    room = f"{ROOM}-{transport}"
    pub = Client(server.url, make_token(f"pub-{transport}"), transports=("websocket",))
    client = Client(
        proxy.url,
        make_token(f"loss-{transport}"),
        transports=(transport,),
        ack_timeout=0.5,  # far shorter than the room's join hook (1.5 s)
        backoff_max=0.3,
    )
    record = Record(client)
    async with pub:
        await client.connect()
        try:
            await client.join(room, timeout=5)
            await _publish(pub, room, range(1, 4))
            await record.until(lambda: record.offsets() == [1, 2, 3])
            sid = client.sid
            # Lost once: the fresh session's rejoin waits 1.5 s in the hook...
            await _lose_session(pub, proxy, before=2)
            await _publish(pub, room, range(4, 6))
            proxy.set("forward")
            async with asyncio.timeout(10):
                while client.state != "connected" or client.recovered is not False:
                    await asyncio.sleep(0.05)
            # ...and the session is lost again while that rejoin is pending.
            await asyncio.sleep(0.3)
            await _lose_session(pub, proxy, before=2)
            await _publish(pub, room, range(6, 7))
            proxy.set("forward")
            await _publish(pub, room, range(7, 9))  # history (5) still holds all of 4..8
            await record.until(lambda: record.offsets()[-1:] == [8], 20)
            assert room in client.rooms
        finally:
            proxy.set("forward")
            await client.close()
    return Outcome(record, client, sid)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rejoins(servers: dict[str, Server]) -> AsyncIterator[Together[Outcome]]:
    together = _side_by_side(servers, _rejoin_outlives_the_ack_timeout)
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_lost_session_catches_up_once_though_its_rejoin_outlives_the_ack_timeout(
    rejoins: Together[Outcome], transport: str
) -> None:
    out = await rejoins.result(transport, 60)
    record, client = out.record, out.client
    assert record.offsets() == list(range(1, 9)), record.items
    assert record.lost() == [] and client.stats["duplicates"] == 0
    assert client.sid == out.sid  # the sid goes on across lost sessions


async def _trimmed_history(server: Server, proxy: FaultProxy, transport: str) -> Outcome:
    room = f"trim-{transport}"
    pub = Client(server.url, make_token(f"tpub-{transport}"), transports=("websocket",))
    client = Client(proxy.url, make_token(f"trim-{transport}"), transports=(transport,),
                    ack_timeout=0.5, backoff_max=0.3)  # fmt: skip
    record = Record(client)
    async with pub:
        await client.connect()
        try:
            await client.join(room, timeout=5)
            await _publish(pub, room, range(1, 3))
            await record.until(lambda: record.offsets() == [1, 2])
            await _lose_session(pub, proxy, before=2)
            await _publish(pub, room, range(3, 13))  # history keeps the last 5: 8..12
            proxy.set("forward")
            await record.until(lambda: record.offsets()[-1:] == [12], 20)
            assert client.positions[room][1] == 12
        finally:
            proxy.set("forward")
            await client.close()
    return Outcome(record, client)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trims(servers: dict[str, Server]) -> AsyncIterator[Together[Outcome]]:
    together = _side_by_side(servers, _trimmed_history)
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_what_history_no_longer_holds_is_announced_and_the_rest_delivered(
    trims: Together[Outcome], transport: str
) -> None:
    out = await trims.result(transport, 60)
    record, client = out.record, out.client
    (lost,) = record.lost()
    assert (lost["from"], lost["to"], lost["room"]) == (3, 7, f"trim-{transport}")
    # Every offset is accounted for: received, or inside the announced range.
    assert record.offsets() == [1, 2, 8, 9, 10, 11, 12]
    assert client.stats["duplicates"] == 0
