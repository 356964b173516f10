"""Link: the wake-up a transport's writer waits on (flag, futures, on_wake hook)."""

from __future__ import annotations

import asyncio

from anywire.core.codec import JsonCodec
from anywire.transports.base import Link
from anywire.transports.websocket import INFO


def _link() -> Link:
    return Link(INFO, JsonCodec())


async def test_a_wake_before_the_wait_is_not_lost() -> None:
    link = _link()
    link.wake()
    assert await link.wait(0.01) is True
    assert await link.wait(0.01) is False  # consumed


async def test_every_waiter_is_woken() -> None:
    link = _link()
    waiters = [asyncio.create_task(link.wait(1.0)) for _ in range(2)]
    await asyncio.sleep(0)
    link.wake()
    assert await asyncio.gather(*waiters) == [True, True]


async def test_a_timed_out_or_cancelled_waiter_leaves_nothing_behind() -> None:
    link = _link()
    assert await link.wait(0.01) is False
    task = asyncio.create_task(link.wait())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not link._waiters
    link.wake()  # nobody waits: only the flag remains
    assert await link.wait(0.01) is True


async def test_on_wake_runs_for_push_wake_and_close() -> None:
    link = _link()
    calls: list[int] = []
    link.on_wake = lambda: calls.append(1)
    link.push(b"{}")
    link.wake()
    link.close(4000, "bye")
    assert len(calls) == 3
    assert link.queued == [b"{}"] and link.closing == (4000, "bye")
