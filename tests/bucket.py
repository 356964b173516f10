"""Token-bucket checks a slow machine cannot turn: the requests go together and the
answers are compared with what the bucket may have refilled in the time they took.

Sent one after another, requests reach the server no faster than the test process can
make them; side by side on 2 cores (load ~15) eight negotiates took long enough for a
0.5/s bucket to refill twice, and a test expecting a 429 got only 200s. Sent together,
they reach the server at once (each on its own connection), and the bound stays exact:
a fresh bucket lets ``burst`` through, plus one per ``1 / rate`` seconds of the burst's
measured span."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

__all__ = ["allowance", "at_once", "at_once_async"]


def allowance(burst: int, rate: float, seconds: float) -> int:
    """Most requests a fresh bucket (``burst`` tokens, ``rate`` a second) lets through
    in ``seconds``."""
    return burst + math.floor(rate * seconds)


def at_once(request: Callable[[], T], n: int) -> tuple[list[T], float]:
    """``n`` calls of ``request`` (blocking) in as many threads at once: their results,
    in the order they were started, and the seconds the whole burst took."""
    with ThreadPoolExecutor(n) as pool:
        started = time.monotonic()
        results = list(pool.map(lambda _: request(), range(n)))
        return results, time.monotonic() - started


async def at_once_async(request: Callable[[], Awaitable[T]], n: int) -> tuple[list[T], float]:
    """``n`` awaits of ``request()`` at once: their results and the burst's seconds."""
    started = time.monotonic()
    results = await asyncio.gather(*(request() for _ in range(n)))
    return list(results), time.monotonic() - started
