"""The client's pacer and the token bucket under it (protocol section 13.1)."""

from __future__ import annotations

import asyncio

import pytest

from anywire.clients.python.pacer import Pacer
from anywire.core.closecodes import CloseCode
from anywire.core.flood import FloodError, TokenBucket


def test_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(10.0, 5, now=0.0)
    assert all(bucket.take(0.0) for _ in range(5))
    assert not bucket.has(0.0)
    assert bucket.wait(0.0) == pytest.approx(0.1)
    assert bucket.wait(0.0, 3) == pytest.approx(0.3)
    assert not bucket.take(0.0)  # refused and charged: one token of debt
    assert bucket.wait(0.0) == pytest.approx(0.2)
    assert bucket.take(0.2)
    assert bucket.has(100.0, 5)
    assert bucket.take(100.0, 50)  # more than the burst costs the whole bucket
    assert not bucket.take(100.0) and not bucket.has(100.0)


def test_flood_error_carries_4008_and_a_whole_second_retry_after() -> None:
    exc = FloodError("flood: too many frames", 0.01)
    assert exc.code == CloseCode.FLOOD == 4008
    assert exc.retry_after_header() == b"1"
    assert FloodError("x", 2.2).retry_after_header() == b"3"


async def test_pacer_spends_90_percent_of_the_rate_from_half_the_burst() -> None:
    pacer = Pacer()
    pacer.configure(flood_rate=200.0, flood_burst=20)  # pacer: 180/s, 10 at most
    assert pacer.max_cost() == 10
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(10):
        await pacer.take()
    assert pacer.waited == 0  # the burst goes at once
    for _ in range(45):
        await pacer.take()
    elapsed = loop.time() - start
    # 45 more tokens at 180/s: at least 0.25 s; never faster than the server allows.
    assert 0.24 <= elapsed < 1.5, elapsed
    # It waited to get there (how long each wait was depends on how late the loop woke it:
    # on a loaded machine one oversleep covers several tokens).
    assert 0 < pacer.waited <= elapsed


async def test_a_flood_close_empties_the_pacer_and_a_new_budget_is_followed() -> None:
    pacer = Pacer()
    pacer.configure(flood_rate=1000.0, flood_burst=100)
    pacer.spent()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await pacer.take(9)  # 9 tokens at 900/s from empty: ~10 ms
    assert loop.time() - start >= 0.008
    pacer.configure(flood_rate=1000.0, flood_burst=10)
    assert pacer.max_cost() == 5


async def test_pace_off_never_waits() -> None:
    pacer = Pacer(enabled=False)
    pacer.configure(flood_rate=1.0, flood_burst=2)
    for _ in range(1000):
        await pacer.take(100)
    assert pacer.waited == 0 and pacer.max_cost() > 1000


async def test_a_retry_after_is_waited_out_by_the_next_send() -> None:
    pacer = Pacer()
    pacer.configure(flood_rate=1000.0, flood_burst=100)
    pacer.spent(0.2)  # a 429 said: come back in 0.2 s
    pacer.spent()  # the close that followed does not shorten it
    loop = asyncio.get_running_loop()
    start = loop.time()
    await pacer.take()
    assert loop.time() - start >= 0.18
