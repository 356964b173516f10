"""Reconnect delays: exponential backoff with full jitter, as a pure generator.

Like ``websockets.client.backoff``, the schedule is a plain iterator so the policy can be
tested without a clock or an event loop; the client just sleeps ``next(delays)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["BUSY_WAITS", "BUSY_WAIT_MAX", "backoff", "retry_delay", "waits_out"]

BUSY_WAITS = 3
"""How often a first ``connect()`` waits out a ``Retry-After`` (a busy server) before it
gives up; reconnects always wait and go on."""
BUSY_WAIT_MAX = 30.0
"""Longest ``Retry-After`` (seconds) a first ``connect()`` waits out; a longer one fails
the connect at once (``ConnectError.retry_after`` tells the caller)."""


def backoff(
    base: float = 0.5,
    cap: float = 10.0,
    factor: float = 2.0,
    rand: random.Random | None = None,
) -> Iterator[float]:
    """Delays ``uniform(0, min(cap, base * factor**n))`` for n = 0, 1, 2... forever.

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads a crowd
    of clients that lost the same server, so they do not come back in lockstep. The
    ceiling stops growing once it reaches ``cap`` (no float overflow however long the
    outage). ``rand`` makes the sequence reproducible in tests.
    """
    # Checked here, not on the first next(): a bad setting fails where it is given.
    if base <= 0 or cap <= 0 or factor < 1:
        raise ValueError("backoff needs base > 0, cap > 0 and factor >= 1")
    return _delays(base, cap, factor, rand if rand is not None else random.Random())


def retry_delay(delays: Iterator[float], retry_after: float | None) -> float:
    """The next delay of ``delays``, added to the server's ``Retry-After`` when it gave
    one: never sooner than asked, and a crowd of refused clients still spreads out."""
    delay = next(delays)
    return delay if retry_after is None else retry_after + delay


def waits_out(retry_after: float | None, waits: int) -> bool:
    """Whether a first ``connect()`` refused for the ``waits``-th time (1, 2...) waits the
    server's ``retry_after`` out instead of failing."""
    return retry_after is not None and retry_after <= BUSY_WAIT_MAX and waits <= BUSY_WAITS


def _delays(base: float, cap: float, factor: float, rng: random.Random) -> Iterator[float]:
    ceiling = min(cap, base)
    while True:
        yield rng.uniform(0, ceiling)
        ceiling = min(cap, ceiling * factor)
