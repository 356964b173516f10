"""When a client acknowledges what it received: the receipt rule (protocol section 6.4).

The server advertises the rule at negotiate, ``"rx": {"frames": F, "bytes": B, "ms": T}``
(:meth:`RxRule.to_wire`; the reference server derives it from its outbox bounds,
:meth:`anywire.core.settings.Settings.client_rx`). After every receipt the client draws
a fresh ``threshold`` uniformly from the integers in ``[ceil(F/2), F]`` and scales the
other two limits by the same fraction ``u = threshold / F``. It then owes the next
receipt as soon as one of these holds:

* ``threshold`` frames are unacknowledged;
* ``B * u`` bytes were received since the last receipt;
* a frame has been unacknowledged for ``T * u`` milliseconds (checked on each message
  and by a timer at :meth:`Receipts.deadline`, so the tail of a burst is acknowledged).

Why draw: every client in a room receives the same events at the same moment. With a
fixed count they all send their receipt on the same event, and the node reads a room's
worth of receipts at once while the events behind them wait. Drawn, a room's receipts
are spread over ``F/2`` events. The time limit is drawn as well, else clients that start
together (a burst after a quiet spell) would stay in step through the time rule.

A client whose negotiate answer has no ``rx`` (an older server) keeps the old rule:
every 16 frames, no byte or time limit (:data:`LEGACY`).

Sans-I/O: the caller passes ``now`` (seconds on any monotonic clock) and the sizes of
the messages it received; randomness is injected (``draw``: a function returning floats
in ``[0, 1)``, such as ``random.Random(seed).random``) so tests are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["LEGACY", "Receipts", "RxRule"]


@dataclass(frozen=True, slots=True)
class RxRule:
    """The receipt cadence a server asks of its clients. ``frames``: most frames left
    unacknowledged (the drawn threshold lies in ``[ceil(frames/2), frames]``);
    ``bytes``/``ms``: byte and time limits, 0 for none; ``spread``: draw the threshold
    (False only for :data:`LEGACY`, the fixed rule of servers that advertise none)."""

    frames: int
    bytes: int = 0
    ms: int = 0
    spread: bool = True

    def to_wire(self) -> dict[str, int]:
        """The negotiate response's ``rx`` field."""
        return {"frames": self.frames, "bytes": self.bytes, "ms": self.ms}

    @classmethod
    def from_wire(cls, value: Any) -> RxRule:
        """The rule a negotiate answer's ``rx`` field gives; :data:`LEGACY` when it is
        absent or malformed (``frames`` a positive integer, ``bytes`` and ``ms``
        non-negative integers, absent meaning 0)."""
        if not isinstance(value, dict):
            return LEGACY
        frames: Any = value.get("frames")
        size: Any = value.get("bytes", 0)
        ms: Any = value.get("ms", 0)
        if not (_uint(frames) and _uint(size) and _uint(ms)) or frames == 0:
            return LEGACY
        return cls(frames, size, ms)


def _uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


LEGACY = RxRule(16, 0, 0, spread=False)
"""The rule before servers advertised one: a receipt every 16 frames."""


class Receipts:
    """One client's receipt limits for the current stretch (since its last receipt)."""

    def __init__(self, rule: RxRule = LEGACY, draw: Callable[[], float] | None = None) -> None:
        self.draw = draw if draw is not None else random.Random().random
        self.rule = rule
        self.threshold = rule.frames
        """Frames that make a receipt due in this stretch."""
        self.max_bytes = 0.0
        self.wait = 0.0
        """Seconds a frame may stay unacknowledged in this stretch (0: no time rule)."""
        self.bytes = 0
        """Bytes received since the last receipt."""
        self.owed_since: float | None = None
        """When the first unacknowledged frame was seen (None: none, or no ``now``)."""
        self.start(rule)

    def start(self, rule: RxRule | None = None) -> None:
        """Begin a stretch (after a receipt, or on a new connection): draw its limits."""
        if rule is not None:
            self.rule = rule
        rule = self.rule
        if rule.spread:
            low = (rule.frames + 1) // 2
            span = rule.frames - low  # the draw picks one of span + 1 thresholds
            self.threshold = low + min(int(self.draw() * (span + 1)), span)
        else:
            self.threshold = rule.frames
        fraction = self.threshold / rule.frames
        self.max_bytes = rule.bytes * fraction
        self.wait = rule.ms * fraction / 1000
        self.bytes = 0
        self.owed_since = None

    def received(self, size: int) -> None:
        """A message of ``size`` bytes arrived."""
        self.bytes += size

    def due(self, owed: int, now: float | None = None) -> bool:
        """Whether ``owed`` unacknowledged frames (``owed > 0``) call for a receipt now.
        ``now`` starts the time limit at the first check that finds frames owed."""
        if owed >= self.threshold or (self.max_bytes and self.bytes >= self.max_bytes):
            return True
        if now is None or not self.wait:
            return False
        if self.owed_since is None:
            self.owed_since = now
        return now - self.owed_since >= self.wait

    def deadline(self) -> float | None:
        """When the time limit falls due, if frames are owed and a time limit applies."""
        if self.owed_since is None or not self.wait:
            return None
        return self.owed_since + self.wait
