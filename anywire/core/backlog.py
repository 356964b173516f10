"""How many handshakes a node has in flight, and how many it may have: admission by the
age of the work, for reconnect storms.

A resume is two legs: a negotiate (the node issues a ticket) and a connection that
redeems the ticket. When 10,000 clients come back at once, a node that answers every
negotiate at once has issued thousands of tickets before the first connection leg is
served; those legs then wait in the kernel's accept queue behind each other, longer than
their clients' attempt timeout, and every leg served late was already abandoned: the
node works flat out and nobody gets in (congestion collapse; the event loop keeps time
meanwhile, so its lateness does not show it: docs/perf/storm.md).

So a node admits only as many handshakes as it finishes in time, like a TCP window:

* **in flight**: tickets issued in the last :attr:`Handshakes.horizon` seconds and not
  yet redeemed (an older one was abandoned, or its client is slow: it no longer counts);
* **the limit** starts at :attr:`Handshakes.ceiling` (a node that keeps up never
  refuses for it, however many tickets its clients take and do not use). When, in a
  target period (judged when it is over), at least :attr:`Handshakes.least` tickets
  were redeemed later than :attr:`Handshakes.target` seconds and they were at least
  half of those redeemed (the node fell behind; one slow client on a mobile link is not
  enough), it drops to what
  the node was seen to finish in time: the redeems per second of that period times the
  target (Little's law), and at most three quarters of what it was. It grows by one for
  each ticket redeemed in time (doubling per round trip while the node keeps up), and
  stays between :attr:`Handshakes.floor` and the ceiling.

A negotiate that would start a handshake past the limit is refused (503 busy with a
``Retry-After``: server/overload.py). Sans-I/O: the caller passes the time in.
"""

from __future__ import annotations

__all__ = ["Handshakes"]


class Handshakes:
    """Tickets in flight and the adaptive limit on them (see the module docstring)."""

    __slots__ = (
        "_late",
        "_period",
        "_total",
        "_young",
        "ceiling",
        "floor",
        "horizon",
        "least",
        "limit",
        "target",
    )

    def __init__(
        self,
        target: float = 3.0,
        horizon: float = 10.0,
        floor: int = 64,
        ceiling: int = 4096,
        least: int = 10,
    ) -> None:
        self.target = target
        """Seconds from negotiate to redeem within which a handshake is on time (a
        connection over a slow mobile link takes about 4 round trips: 2 s at 500 ms)."""
        self.horizon = horizon
        """Seconds after which an unredeemed ticket no longer counts as in flight (its
        client has given up: the Python client's attempt timeout is 5 s, the storm
        bench's 10 s)."""
        self.floor = floor
        """The limit never goes below this (a node always admits some handshakes)."""
        self.ceiling = ceiling
        """Nor above this."""
        self.least = least
        """Late redeems one target period needs before the limit shrinks."""
        self.limit = float(ceiling)
        """Handshakes admitted in flight at once now."""
        self._young: dict[str, float] = {}  # nonce -> when issued, oldest first
        self._period = -1e18  # when the current period of late counting began
        self._total = 0
        self._late = 0

    def in_flight(self, now: float) -> int:
        """Tickets issued within :attr:`horizon` seconds and not redeemed."""
        young, oldest = self._young, now - self.horizon
        while young:
            nonce = next(iter(young))
            if young[nonce] > oldest:
                break
            del young[nonce]
        return len(young)

    def full(self, now: float) -> bool:
        """Whether a new handshake would exceed the limit."""
        return self.in_flight(now) >= self.limit

    def issued(self, nonce: str, now: float) -> None:
        """Negotiate issued ticket ``nonce`` at ``now``."""
        self._young[nonce] = now

    def redeemed(self, nonce: str, age: float, now: float) -> bool:
        """Ticket ``nonce`` was redeemed ``age`` seconds after it was issued. Adapts the
        limit; True when this redeem closed a period that found the node behind."""
        self._young.pop(nonce, None)
        behind = False
        elapsed = now - self._period
        if elapsed >= self.target:
            # The period is over: judge it whole (a few redeems are no rate).
            late, total = self._late, self._total
            if late >= self.least and 2 * late >= total and elapsed < 2 * self.target:
                # What the node finished, per second, times the time a handshake may
                # take: as many in flight as it finishes in time (Little's law).
                done = total / elapsed * self.target
                self.limit = max(float(self.floor), min(self.limit * 0.75, done))
                behind = True
            self._period, self._total, self._late = now, 0, 0
        self._total += 1
        if age <= self.target:
            self.limit = min(float(self.ceiling), self.limit + 1.0)
        else:
            self._late += 1
        return behind
