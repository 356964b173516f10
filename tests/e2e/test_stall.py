"""A node's own overload does not run out resume windows (core/stall.py): a client
dropped while its node is overloaded, and kept out by the node's load shedding for
longer than the resume window, still resumes its session (``recovered``) and gets every
event exactly once, in order, without ``$lost``. The control: the same run on a node
whose window is never stretched (``resume_stretch`` 1) lands the client on a fresh
session, so the test can fail.

The overload is real: the server blocks its own event loop (tests/e2e/stallapp.py,
``/ctl/overload``), its lateness sheds negotiates (503, ``Retry-After``) and runs the
stall clock. Every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client
from tests.waiting import until

from .conftest import Server, start_server
from .stallapp import RESUME_WINDOW

APP = "tests.e2e.stallapp:app"
OVERLOAD = 10.0  # seconds the node is overloaded, from the drop on
RATE = 5.0  # numbered events per second, published throughout


@pytest.fixture(scope="module")
def stretched() -> Iterator[Server]:
    srv = start_server({}, app=APP)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def unstretched() -> Iterator[Server]:
    srv = start_server({"ANYWIRE_TEST_STRETCH": "1"}, app=APP)
    yield srv
    srv.stop()


@dataclass
class Run:
    client: Client
    numbers: list[int] = field(default_factory=list)
    lost: list[Any] = field(default_factory=list)
    hellos: list[float] = field(default_factory=list)
    total: int = 0
    away: float = 0.0


async def _dropped_during_an_overload(url: str, transport: str, catch_up: bool) -> Run:
    """Connect, drop the connection as the node becomes overloaded for OVERLOAD seconds,
    wait for the client to be back (and, ``catch_up``, for the last event)."""
    run = Run(Client(url, transports=[transport], backoff_max=1.0))
    run.client.on("n")(run.numbers.append)
    run.client.on("$lost")(run.lost.append)
    run.client.on_connect(lambda: run.hellos.append(time.monotonic()))
    await run.client.connect()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        before = (await http.get("/ctl/stats")).json()["paced"]
        secs = OVERLOAD + RESUME_WINDOW + 2
        (await http.post(f"/ctl/pace?rate={RATE}&secs={secs}")).raise_for_status()
        run.total = before + int(RATE * secs)
        await until(lambda: len(run.numbers) >= 2, 10, "the first events")
        (await http.post(f"/ctl/overload?secs={OVERLOAD}")).raise_for_status()
        # Dropped once the node knows it is behind (it sheds from then on), so the
        # client cannot slip back in before the overload is seen.
        deadline = time.monotonic() + 5
        while (await http.get("/ctl/stats")).json()["loop_lag"] <= 0.1:
            assert time.monotonic() < deadline, "the overload was never seen"
        await run.client.drop_connection()
        t_drop = time.monotonic()
        await until(lambda: len(run.hellos) >= 2, OVERLOAD + 20, "the client back")
        run.away = run.hellos[1] - t_drop
        if catch_up:
            await until(lambda: run.numbers[-1:] == [run.total], secs + 10, "the last event")
    return run


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
async def test_a_session_outlives_its_window_while_the_node_sheds(
    stretched: Server, transport: str
) -> None:
    run = await _dropped_during_an_overload(stretched.url, transport, catch_up=True)
    try:
        # Kept out (shed) longer than the window: otherwise this proves nothing.
        assert run.away > RESUME_WINDOW, f"back after {run.away:.1f} s"
        assert run.client.recovered, f"a fresh session after {run.away:.1f} s away"
        first = run.numbers[0]
        assert run.numbers == list(range(first, run.total + 1)), "a number lost or repeated"
        assert run.lost == [] and run.client.stats["duplicates"] == 0
    finally:
        await run.client.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["websocket"])
async def test_without_the_stretch_the_window_runs_out(unstretched: Server, transport: str) -> None:
    run = await _dropped_during_an_overload(unstretched.url, transport, catch_up=False)
    try:
        assert run.away > RESUME_WINDOW, f"back after {run.away:.1f} s"
        assert not run.client.recovered  # the window passed during the overload
    finally:
        await run.client.close()
