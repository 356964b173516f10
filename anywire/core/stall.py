"""The node's stall clock: the seconds it has spent overloaded, as a clock that runs only
while it is.

A session waiting to be resumed is kept for ``resume_window`` seconds. When a whole node
is behind (a reconnect storm it cannot serve at once: it sheds negotiates, its event loop
runs late), its clients cannot get in within that window however promptly they retry,
and the window would run out because of the node's own slowness: thousands of sessions
would be thrown away and their clients land on fresh ones, losing what was queued for
them (docs/perf/storm.md). So the window stands still while the node is overloaded: a
session detached at ``t`` with the clock reading ``s0`` expires at
``t + window + (stall clock now - s0)``, bounded by ``resume_stretch`` windows in all.

What that costs is bounded: a session kept longer still holds its slot under
``max_sessions`` (a detached session counts like a live one) and its outbox is bounded by
``outbox_size`` / ``outbox_bytes``, so memory is bounded as before; only the time a dead
client's session lingers grows, by at most ``resume_stretch - 1`` windows.

Sans-I/O: the caller says when the node is overloaded and passes the time in.
"""

from __future__ import annotations

__all__ = ["StallClock", "stretch"]


class StallClock:
    """Cumulative seconds of overload. :meth:`set` it whenever the overload signal is
    sampled; :meth:`read` it at any time (monotonic, never decreasing)."""

    __slots__ = ("_since", "_total")

    def __init__(self) -> None:
        self._total = 0.0  # overload seconds of the periods that have ended
        self._since: float | None = None  # start of the period going on, if any

    @property
    def overloaded(self) -> bool:
        """Whether an overload period is going on (as last :meth:`set`)."""
        return self._since is not None

    def set(self, now: float, overloaded: bool) -> None:
        """The node is (or is no longer) overloaded as of ``now``."""
        if overloaded:
            if self._since is None:
                self._since = now
        elif self._since is not None:
            self._total += max(0.0, now - self._since)
            self._since = None

    def read(self, now: float) -> float:
        """Seconds spent overloaded up to ``now``."""
        if self._since is None:
            return self._total
        return self._total + max(0.0, now - self._since)


def stretch(stalled: float, mark: float, window: float, factor: float) -> float:
    """Seconds a resume window that started when the stall clock read ``mark`` is
    extended by, the clock now reading ``stalled``: the overload since, at most
    ``(factor - 1) * window`` (``factor`` 1 or less: never extended)."""
    if factor <= 1.0:
        return 0.0
    return min(max(0.0, stalled - mark), (factor - 1.0) * window)
