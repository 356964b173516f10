"""RedisBroker.stop() is bounded even when a cancellation is swallowed on the way (seen:
a node's heartbeat task kept looping after its cancel and the process never exited)."""

from __future__ import annotations

import asyncio

from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker

from .conftest import RedisServer


async def test_stop_ends_a_heartbeat_that_swallows_its_cancel(redis: RedisServer) -> None:
    broker = RedisBroker(redis.url, heartbeat=0.05)
    broker.node_id = "stopper"
    beats = 0
    swallowed = asyncio.Event()

    async def stubborn_beat() -> None:
        # What a library that catches CancelledError inside a command does.
        nonlocal beats
        beats += 1
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            swallowed.set()

    delivered: list[Envelope] = []
    await broker.start(delivered.append)
    broker.on_beat = stubborn_beat
    await asyncio.wait_for(asyncio.shield(_until(lambda: beats > 0)), 5)
    async with asyncio.timeout(5):
        await broker.stop()
    assert swallowed.is_set()  # the cancel really was swallowed, and stop() still returned
    after = beats
    await asyncio.sleep(0.2)
    assert beats == after  # and the heartbeat loop is over
    assert broker.state() == "down"


async def _until(check: object) -> None:
    while not check():  # type: ignore[operator]
        await asyncio.sleep(0.01)
