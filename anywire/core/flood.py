"""The flood budget: one token bucket per session (and per stranger connection).

Everything a client can make the server do costs tokens from one bucket: each frame,
each message (an empty batch costs one), each WebSocket ping or pong, each long-poll
request, each POST, each resume. The bucket holds ``flood_burst`` tokens and refills at
``flood_rate`` per second; a request it cannot pay for is refused with 4008 FLOOD (HTTP
429 with ``Retry-After``), is charged all the same (the bucket goes into debt, so a
client that ignores ``Retry-After`` stays refused) and the session is kept.

Sans-I/O: the caller passes ``now``.
"""

from __future__ import annotations

import math

from .closecodes import CloseCode
from .errors import RemoteProtocolError

__all__ = ["RESUME_COST", "FloodError", "TokenBucket"]

RESUME_COST = 10
"""Tokens a resume costs: the negotiate that names the session, and the opening that
resumes it, each. A reconnection costs the server far more than a frame (an HTTP
request, a WebSocket handshake), and a client reconnecting at once after every 4008 must
not get a fresh connection for each token the rate refills."""


class FloodError(RemoteProtocolError):
    """A client spent its flood budget. ``retry_after`` is how long (seconds) until the
    bucket can pay for the refused request again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, CloseCode.FLOOD)
        self.retry_after = retry_after

    def retry_after_header(self) -> bytes:
        """The ``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after))).encode()


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second (starts full)."""

    __slots__ = ("at", "burst", "level", "rate", "refused")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.level = float(burst)
        self.at = now
        self.refused = False
        """Whether it ever refused anything (the owner flooded at least once)."""

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if the bucket holds them, else refuse (False).

        A refusal is charged all the same, into debt down to ``-burst``: a client that
        keeps asking without waiting for its ``Retry-After`` stays refused, instead of
        getting through on every token the rate refills (its requests are then all
        refused the cheap way). A cost above the burst (a batch larger than the bucket)
        costs the full bucket."""
        if cost > self.burst:
            cost = self.burst
        level = self.level + (now - self.at) * self.rate
        if level > self.burst:
            level = self.burst  # (no min(): this runs for every client message)
        self.at = now
        if level < cost:
            self.refused = True
            level -= cost
            self.level = level if level > -self.burst else -self.burst
            return False
        self.level = level - cost
        return True

    def refill(self, now: float) -> None:
        """Bring the level up to ``now`` (nothing spent, nothing charged)."""
        level = self.level + (now - self.at) * self.rate
        self.level = level if level < self.burst else self.burst
        self.at = now

    def has(self, now: float, cost: float = 1.0) -> bool:
        """Whether :meth:`take` would succeed now (nothing is spent, nothing charged)."""
        return self.level + (now - self.at) * self.rate >= min(cost, self.burst)

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available (0 if they are now). A cost above
        the burst can never be paid: the wait for a full bucket is given."""
        level = min(self.burst, self.level + (now - self.at) * self.rate)
        need = min(cost, self.burst) - level
        return 0.0 if need <= 0 or self.rate <= 0 else need / self.rate

    def spend(self, now: float, cost: float, what: str) -> None:
        """:meth:`take`, raising :class:`FloodError` (4008) when the bucket cannot pay."""
        if not self.take(now, cost):
            raise FloodError(f"flood: too many {what}", self.wait(now, cost))
