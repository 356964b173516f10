"""Pacing what the client sends below the server's flood budget.

The server pays everything a client makes it do from one token bucket per session
(``flood_rate`` tokens a second, ``flood_burst`` at most; protocol section 13.4) and
closes a client that overspends with 4008. A :class:`Pacer` is the client's own, smaller
bucket (90% of the rate, half the burst), which every message, POST, poll and resume
waits on: a loop of 10,000 emits is slowed to what the server allows, never refused.

One pacer per client, kept across reconnects (the server's budget is kept across
resumes too); each negotiate answer sets its rate and size.
"""

from __future__ import annotations

import asyncio

from ...core.flood import TokenBucket
from ...core.settings import Settings

__all__ = ["BURST_SHARE", "RATE_SHARE", "Pacer"]

RATE_SHARE = 0.9
"""The share of the server's ``flood_rate`` a pacer spends."""
BURST_SHARE = 0.5
"""The share of the server's ``flood_burst`` a pacer holds."""

_DEFAULTS = Settings()


class Pacer:
    """A token bucket the client's sends wait on; ``enabled=False`` never waits."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bucket: TokenBucket | None = None
        self.waited = 0.0
        """Seconds spent waiting for tokens, in total (the cost of pacing)."""

    def configure(self, flood_rate: float, flood_burst: float) -> None:
        """Follow the budget a negotiate advertised (the first call starts the bucket
        full; later ones keep what it holds, up to the new size)."""
        rate = flood_rate * RATE_SHARE
        burst = max(1.0, flood_burst * BURST_SHARE)
        now = asyncio.get_running_loop().time()
        if self._bucket is None:
            self._bucket = TokenBucket(rate, burst, now)
            return
        self._bucket.refill(now)  # up to now at the old rate
        self._bucket.rate, self._bucket.burst = rate, burst
        self._bucket.level = min(self._bucket.level, burst)

    def max_cost(self) -> int:
        """The most tokens one send can cost: no message may hold more frames."""
        if not self.enabled:
            return 2**31
        return max(1, int(self._budget().burst))

    def spent(self, retry_after: float = 0.0) -> None:
        """The server refused a request for flood (4008): start again from empty, or
        from further below when it said to retry after ``retry_after`` seconds, so the
        reconnect does not overspend at once."""
        bucket = self._budget()
        bucket.refill(asyncio.get_running_loop().time())
        floor = -max(0.0, retry_after - 1 / bucket.rate) * bucket.rate
        bucket.level = min(bucket.level, floor)  # (never less of a wait than already)

    async def take(self, cost: int = 1) -> None:
        """Wait until ``cost`` tokens are there, and spend them."""
        if not self.enabled or cost <= 0:
            return
        bucket = self._budget()
        loop = asyncio.get_running_loop()
        while not bucket.has(loop.time(), cost):
            delay = bucket.wait(loop.time(), cost)
            self.waited += delay
            await asyncio.sleep(delay)
        bucket.take(loop.time(), cost)

    def _budget(self) -> TokenBucket:
        if self._bucket is None:  # no negotiate yet: the protocol's defaults
            self.configure(_DEFAULTS.flood_rate, _DEFAULTS.flood_burst)
        assert self._bucket is not None
        return self._bucket
