"""The flood budget of strangers: requests that name no live session.

A request with an unknown, expired or forged session token, or a ticket that is invalid
or used, has no session to charge, yet it costs the server a refusal (an HTTP answer, a
WebSocket handshake). Such refusals are charged to a bucket per client address, of the
sessions' size and rate (``flood_burst``, ``flood_rate``); past it each refusal is held
up to its wait (1 s at most) before it is sent, as a 429 is: one connection that keeps
asking is then refused about once a second rather than thousands of times. The answer
itself is unchanged (410/4007...), so a legitimate client that lost its session (a
server restart) only waits, and only when its address is busy refusing.

The table is bounded: when it holds :data:`MAX_ADDRESSES` addresses, the ones whose
bucket has refilled are forgotten, and if that is not enough the oldest half.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.flood import TokenBucket
from ..core.settings import Settings
from ..transports.base import FLOOD_HOLD

__all__ = ["MAX_ADDRESSES", "Strangers"]

MAX_ADDRESSES = 10_000


class Strangers:
    """Per-address buckets for refusals of requests that name no session."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    def hold(self, address: str) -> float:
        """Charge one refusal to ``address``; how long to hold it (0: answer now)."""
        now = self.clock()
        bucket = self.buckets.get(address)
        if bucket is None:
            if len(self.buckets) >= MAX_ADDRESSES:
                self._prune(now)
            s = self.settings
            bucket = self.buckets[address] = TokenBucket(s.flood_rate, s.flood_burst, now)
        if bucket.take(now):
            return 0.0
        return min(bucket.wait(now), FLOOD_HOLD)

    def _prune(self, now: float) -> None:
        full = [a for a, b in self.buckets.items() if b.has(now, b.burst)]
        for address in full:
            del self.buckets[address]
        if len(self.buckets) >= MAX_ADDRESSES:
            for address in list(self.buckets)[: len(self.buckets) // 2]:
                del self.buckets[address]
