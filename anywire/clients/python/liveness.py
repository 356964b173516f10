"""Half-open detection: a connection that stops answering what the client sends is dead.

The server answers every client frame that needs it quickly: a sequenced frame (event,
ack, join, leave) gets an ``rx`` within ``ack_delay`` (0.1 s), a ``ping`` gets a ``pong``
(protocol section 6.4). So once the client has sent such a frame, hearing nothing at all
for ``ping_timeout`` means the path is half-open (a NAT or proxy dropped it silently): the
connection is declared dead and the client resumes on a new one. Without this watch a
half-open path is noticed only by the heartbeat, after ``ping_interval + ping_timeout``.

:class:`AnswerWatch` is the clock-free state; :class:`HalfOpenWatch` runs it on the event
loop for one transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from ...core.frames import SEQUENCED, Frame

__all__ = ["AnswerWatch", "HalfOpenWatch", "expects_answer"]


def expects_answer(frames: Iterable[Frame]) -> bool:
    """Whether the server must answer one of ``frames`` promptly (an ``rx`` or a ``pong``)."""
    return any(f.type in SEQUENCED or f.type == "ping" for f in frames)


class AnswerWatch:
    """When the oldest unanswered send was made; ``deadline`` says when silence is fatal."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.since: float | None = None

    def sent(self, now: float) -> bool:
        """A frame that needs an answer left at ``now``; True if this started the wait."""
        if self.since is None:
            self.since = now
            return True
        return False

    def heard(self) -> None:
        """Anything came from the server: the path works."""
        self.since = None

    def deadline(self) -> float | None:
        return None if self.since is None else self.since + self.timeout

    def expired(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline


class HalfOpenWatch:
    """:class:`AnswerWatch` on the running loop: calls ``on_dead`` once if the server stays
    silent for ``timeout`` seconds after a send that needed an answer."""

    def __init__(self, timeout: float, on_dead: Callable[[str], None]) -> None:
        self._state = AnswerWatch(timeout)
        self._on_dead = on_dead
        self._timer: asyncio.TimerHandle | None = None

    def sent(self, frames: Iterable[Frame]) -> None:
        if not expects_answer(frames):
            return
        loop = asyncio.get_running_loop()
        if self._state.sent(loop.time()):
            self._timer = loop.call_later(self._state.timeout, self._check)

    def heard(self) -> None:
        self._state.heard()
        self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._state.expired(asyncio.get_running_loop().time()):
            self._on_dead(
                f"no answer from the server within {self._state.timeout} s of a send: "
                "connection presumed half-open"
            )


class IdleCuts:
    """Adaptive heartbeats: notices connections cut after a consistent idle time shorter
    than the ping interval (a proxy or NAT with a short idle timeout) and says which
    shorter interval to ask for at the next negotiate (body ``ping_interval``, protocol
    section 3.1). Clock-free: the caller measures each cut's idle time.

    Two cuts in a row whose idle times agree within ``tolerance`` (relative) are
    consistent; the ask is ``fraction`` of the shorter one, so the server's pings keep
    the path busy well within the cut (a third: a browser retries a cut poll once, out
    of sight, which doubles the idle time it measures; the same rule for both clients).

    ``heartbeat`` (seconds, the client's ``heartbeat`` option): the interval to ask for
    until cuts say otherwise, e.g. a longer one to save battery (the server grants it
    within its ``max_ping_interval``); a shorter ask from cuts always wins.
    """

    def __init__(
        self, tolerance: float = 0.25, fraction: float = 1 / 3, heartbeat: float | None = None
    ) -> None:
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError("heartbeat must be a positive number of seconds")
        self.heartbeat = heartbeat
        self.tolerance = tolerance
        self.fraction = fraction
        self.cuts = 0  # cuts counted as idle cuts
        self.asked: float | None = None  # seconds, once a pattern was seen
        self._last: float | None = None

    def ended(self, idle: float | None, code: int | None, interval: float) -> bool:
        """A connection pinged every ``interval`` seconds ended ``idle`` seconds after
        its last traffic (None: the client dropped it itself) with close ``code``.
        Returns True if this changed what to ask for."""
        # Only a cut by the network (no close code from the server) that came sooner
        # than the heartbeat says anything about an idle timeout.
        if idle is None or code not in (None, 1006) or idle >= interval:
            self._last = None
            return False
        self.cuts += 1
        last, self._last = self._last, idle
        if last is None or abs(last - idle) > self.tolerance * max(last, idle):
            return False
        ask = self.fraction * min(last, idle)
        if self.asked is not None and ask >= self.asked:
            return False
        self.asked = ask
        return True

    def request_ms(self) -> int | None:
        """The negotiate body's ``ping_interval`` (ms), or None to ask for nothing: the
        shorter of the ``heartbeat`` option and what cuts asked for."""
        asks = [a for a in (self.asked, self.heartbeat) if a is not None]
        return max(1, int(min(asks) * 1000)) if asks else None
