"""Clients that never trip the flood limit by normal use (issue #13, item 7): the Python
client paces everything it sends to the budget the server advertises, so a plain loop of
emits is slowed, not closed; without pacing the same loop is closed with 4008 and
the client backs off, resumes and still delivers everything exactly once.

The budget is small (100 tokens a second) because both verdicts need the loop to send
faster than the budget refills, and how fast a client can send is the machine's doing,
not the client's: over SSE and long-poll it sends at most ``max_batch`` (100) frames per
POST with one POST in flight, 100 frames per round trip. Against 2,000 tokens a second
(this module's budget until session 30) a round trip had to take under 50 ms: at load 5
5,000 emits took 6.7 s (750 frames/s), so the unpaced client was never refused and the
paced one never waited (at load 12, 620 frames/s). Against 100 a second with a burst of
200, 600 emits are a flood unless they take over 4 s (150 frames/s, a round trip over
0.67 s), and the paced loop must wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from anywire.clients.python import Client, QueueFull
from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token, start_server

RATE, BURST = 100, 200  # (module docstring)
EMITS = 600  # 400 over the burst, 4 s of refill: a flood if sent faster than 150 a second


@pytest.fixture(scope="module")
def budgeted() -> Iterator[Server]:
    # The production resume window: a client backing off after repeated 4008s (up to
    # 10 s) must find its session still there, as it would in production.
    srv = start_server({"AW_FLOOD_RATE": str(RATE), "AW_FLOOD_BURST": str(BURST),
                        "AW_RESUME_WINDOW": "30"})  # fmt: skip
    yield srv
    srv.stop()


async def emit_all(
    server: Server, transport: str, n: int, pace: bool
) -> tuple[Client, list[int], int]:
    """Emit ``n`` events in a plain loop; returns the client, what the server recorded
    (in order) and how many times the client connected."""
    user = f"budget-{transport}-{pace}"
    client = Client(server.url, make_token(user), transports=[transport], pace=pace,
                    ack_timeout=30)  # fmt: skip
    connects = 0
    connected = asyncio.Event()

    @client.on_connect
    def counted() -> None:
        nonlocal connects
        connects += 1
        connected.set()

    @client.on_disconnect
    def dropped() -> None:
        connected.clear()

    await client.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def patiently(send: Any) -> Any:
        while True:
            try:
                return await send()
            except QueueFull:  # disconnected, queue full (only without pacing): wait
                await connected.wait()

    async with asyncio.timeout(120):
        for i in range(n):
            await patiently(lambda: client.emit("record", i))  # noqa: B023 (awaited now)
        recorded = await patiently(lambda: client.call("recorded", timeout=60))
    elapsed = loop.time() - started
    print(f"\n{transport} pace={pace}: {n} emits in {elapsed:.2f} s, {connects} connection(s), "
          f"paced {client.pacer.waited:.2f} s, last close {client.last_close}")  # fmt: skip
    return client, recorded, connects


@dataclass
class Emitted:
    """What a client emitting in a plain loop went through (one transport)."""

    recorded: list[int]
    connects: int
    last_close: tuple[int, str] | None
    waited: float  # seconds the pacer held sends back
    state: str


async def _emitted(server: Server, transport: str, n: int, pace: bool) -> Emitted:
    client, recorded, connects = await emit_all(server, transport, n, pace)
    try:
        return Emitted(recorded, connects, client.last_close, client.pacer.waited, client.state)
    finally:
        await client.close()


# Each transport's client has its own session, so its own flood budget: the three runs of
# a test go at the same time (mostly waiting: on the pacer, or backing off after 4008).


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def paced(budgeted: Server) -> AsyncIterator[Together[Emitted]]:
    together = Together(TRANSPORTS, lambda t: _emitted(budgeted, t, EMITS, pace=True))
    yield together
    await together.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def unpaced(budgeted: Server) -> AsyncIterator[Together[Emitted]]:
    together = Together(TRANSPORTS, lambda t: _emitted(budgeted, t, EMITS, pace=False))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_loop_of_emits_is_paced_not_killed(
    paced: Together[Emitted], transport: str
) -> None:
    out = await paced.result(transport, 150)
    assert out.recorded == list(range(EMITS))  # all delivered, in order, once
    assert out.connects == 1 and out.last_close is None  # never closed, by flood or else
    # Slowed to the budget: 600 frames (plus polls) are three times the burst.
    assert out.waited > 0


@pytest.mark.asyncio(loop_scope="module")
async def test_an_unpaced_client_is_closed_4008_and_resumes(
    unpaced: Together[Emitted], transport: str
) -> None:
    out = await unpaced.result(transport, 150)
    assert out.last_close is not None and out.last_close[0] == 4008
    assert out.connects >= 2  # it came back by itself...
    assert out.recorded == list(range(EMITS))  # ...resumed, and lost or doubled nothing
    assert out.state == "connected"
