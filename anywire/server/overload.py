"""Load shedding at negotiate: while the event loop runs late, refuse new work at once.

A reconnect storm brings every client of a node back within its first backoff step. When
the node cannot answer them all within their connect timeout, every attempt it finishes
late has already been abandoned by its client, which is back with another one: the node
works flat out and nobody gets in (congestion collapse: bench/storm.py showed it at
4,000 WebSocket clients on a node with half a core, not one resume in two minutes).

The lateness of the loop says the node is behind before any client times out: a probe
sleeps :data:`PROBE` seconds at a time and measures how much later than asked it woke.
While it is over ``Settings.shed_lag`` (and for :data:`HOLD` seconds after), negotiate
answers ``503 busy`` (code 4000) before it reads the body or checks a credential, with a
``Retry-After`` drawn at random between 1 s and a ceiling that grows with the lag, so the
refused crowd comes back spread out instead of together. Work already admitted (tickets
issued, connections opening) goes on: that is what the node is busy finishing.

The same signal runs the node's stall clock (:attr:`LoopLag.stall`,
:mod:`anywire.core.stall`): while the node sheds, the resume windows of the sessions
waiting for their clients stand still (bounded by ``resume_stretch``), so the node's own
slowness does not throw away the sessions the refused clients come back for.
"""

from __future__ import annotations

import asyncio
import math
import random

from ..core.admission import Refusal
from ..core.closecodes import CloseCode
from ..core.stall import StallClock
from .stale import Stale
from .tasks import cancel_and_wait

__all__ = ["HOLD", "PROBE", "LoopLag"]

PROBE = 0.05
"""Seconds between two probes of the loop's lateness."""
HOLD = 1.0
"""Seconds the node keeps shedding after its loop was last seen late."""
MAX_RETRY_AFTER = 30
"""Ceiling of a shed negotiate's ``Retry-After`` (the Python client waits out at most
30 s at its first connect, ``backoff.BUSY_WAIT_MAX``)."""


class LoopLag:
    """Watches the running loop's lateness; :meth:`refusal` while the node is behind."""

    def __init__(
        self, threshold: float, longest: float = MAX_RETRY_AFTER, rand: random.Random | None = None
    ) -> None:
        """``threshold``: lateness in seconds past which negotiates are shed (0: never).
        ``longest``: the largest ``Retry-After`` to give (the server passes a third of
        its resume window times ``resume_stretch``: a refused client's session waits
        for it, since the stall clock runs until its ``Retry-After`` has passed)."""
        self.threshold = threshold
        self.longest = max(2, min(MAX_RETRY_AFTER, int(longest)))
        self.lag = 0.0  # the last probe's lateness, seconds
        self.probes = 0  # probes run so far (tests)
        self.shed = 0  # negotiates refused so far (metrics, tests)
        self._late_until = -math.inf
        self._worst = 0.0  # the largest lateness seen while shedding (sets the spread)
        self._rand = rand or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._limited_until = -math.inf  # shedding for stale negotiates until then
        self._deferred_until = -math.inf  # the last Retry-After handed out ends then
        self._spread = 2  # the Retry-After ceiling of this shedding episode (doubles)
        self._grown_at = -math.inf  # when the spread last doubled
        self.stall = StallClock()
        """Runs while the node sheds (on the loop's clock): resume windows stand still."""

    def stalled(self, now: float) -> float:
        """The stall clock at ``now`` (the loop's time)."""
        return self.stall.read(now)

    def start(self) -> None:
        """Start probing (on the running loop); nothing when shedding is off."""
        if self.threshold > 0 and self._task is None:
            self._task = asyncio.create_task(self._probe(), name="anywire-loop-lag")
            Stale.listeners.append(self.stale_negotiate)

    async def stop(self) -> None:
        """Stop probing."""
        task, self._task = self._task, None
        if self.stale_negotiate in Stale.listeners:
            Stale.listeners.remove(self.stale_negotiate)
        await cancel_and_wait(task)

    def behind(self) -> bool:
        """Whether the node is shedding now (the loop was seen late within :data:`HOLD`
        seconds): what :meth:`refusal` refuses on, without counting a refusal."""
        if self._task is None:
            return False
        return asyncio.get_running_loop().time() < self._late_until

    def refusal(self) -> Refusal | None:
        """A 503 (code 4000) with a spread ``Retry-After`` while the loop runs late, else
        None."""
        if not self.behind():
            self._worst = 0.0  # the episode is over
            return None
        now = asyncio.get_running_loop().time()
        self.shed += 1
        # The longer the shedding lasts, the larger the crowd it keeps out: the spread
        # doubles every second of it (a crowd of N clients spread over S seconds comes
        # back at N/S a second; 10,000 over 10 s was more than a starved node could
        # even refuse). And the longer the loop lags, the more work is queued.
        if now - self._grown_at >= 1.0:
            self._spread = min(self.longest, 2 * self._spread) if now - self._grown_at < 2.0 else 2
            self._grown_at = now
        ceiling = min(self.longest, max(self._spread, math.ceil(4 * self._worst)))
        retry = self._rand.randint(1, ceiling)
        # The client's session waits for it: the node deferred its work, so the stall
        # clock runs until the Retry-After has passed (core/stall.py, bounded there).
        self._deferred_until = max(self._deferred_until, now + retry)
        self.stall.set(now, True)
        return Refusal(503, int(CloseCode.SHUTDOWN), retry, "server overloaded: try later")

    def sustained(self) -> bool:
        """Whether the node is behind with lateness seen twice in a row (queued work that
        lasts), not after a single late probe (a burst, a pause). What a resume without
        negotiate is shed on (:meth:`.admission.Gate.refuse_upgrade`): its upgrade is
        paid for already, and a refusal makes its client pay another."""
        if not self.behind():
            self._worst = 0.0  # (as refusal() does: the episode is over)
            return False
        # _worst: the smaller lateness of two probes in a row (_probe).
        return self._worst > self.threshold

    def stale_negotiate(self, age: float) -> None:
        """A negotiate that waited ``age`` seconds in the kernel was shed (server/stale.py):
        the node is behind, its stall clock runs for a hold."""
        now = asyncio.get_running_loop().time()
        self._limited_until = max(self._limited_until, now + HOLD)
        self.shed += 1
        self.stall.set(now, True)

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + PROBE
            await asyncio.sleep(PROBE)
            now = loop.time()
            before, self.lag = self.lag, now - asked
            self.probes += 1
            if self.lag > self.threshold:
                self._late_until = now + HOLD
                # Queued work shows as lateness that lasts: one late probe after on-time
                # ones is a pause (a GC, the VM descheduled, SIGSTOP), after which the
                # node is as free as before. Only lateness seen twice in a row widens
                # the spread; a 5 s pause used to send the clients it had just lost
                # away for up to 20 s.
                self._worst = max(self._worst, min(self.lag, before))
                # The node was behind from when this probe should have woken.
                self.stall.set(asked, True)
            elif now >= max(self._late_until, self._limited_until, self._deferred_until):
                self.stall.set(now, False)
