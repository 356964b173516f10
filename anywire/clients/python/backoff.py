"""Reconnect delays: exponential backoff with full jitter (a pure generator)."""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff"]


def backoff(
    base: float = 0.5,
    cap: float = 10.0,
    factor: float = 2.0,
    rand: random.Random | None = None,
) -> Iterator[float]:
    """Yield delays ``uniform(0, min(cap, base * factor**n))`` for n = 0, 1, 2...

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads a crowd
    of clients that lost the same server, so they do not come back in lockstep.
    """
    rng = rand or random.Random()
    ceiling = base
    while True:
        yield rng.uniform(0, min(cap, ceiling))
        ceiling = min(cap, ceiling * factor)
