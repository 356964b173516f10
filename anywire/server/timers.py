"""The host's timer task: advances every session's clock (heartbeats, owed
acknowledgements, credential expiry, resume windows) every ``tick`` seconds.

Attached sessions are looked at every tick: their deadlines move with every message. A
detached session waits instead in a heap keyed by the earliest its resume window can
end (``detached_at + resume_window``), so the thousands of detached sessions of a
reconnect storm cost nothing per tick until they are due: the scan of every session at
every tick was 15 % of a node's CPU during a 6,000-client storm (py-spy,
docs/perf/storm.md), on the node that has least CPU to spare. When one is due, its
window may have been stretched meanwhile (the node shed load: core/stall.py); it then
goes back in at its new end. An entry names the session by sid and by the time it was
detached: one resumed or ended since is skipped (a later detach has its own entry), and
the heap holds no session object alive.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING

from ..core.session import ServerSession, SessionState

if TYPE_CHECKING:
    from .host import SessionHost

__all__ = ["Timers"]

_DETACHED = SessionState.DETACHED


class Timers:
    """The timer of one :class:`~anywire.server.host.SessionHost`."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        # (earliest end of the resume window, tie-break, sid, detached_at)
        self._waiting: list[tuple[float, int, str, float]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        """Entries waiting in the heap (stale ones included until they are due)."""
        return len(self._waiting)

    def detached(self, sess: ServerSession) -> None:
        """``sess`` was just detached: look at it again when its window can end."""
        at = sess.detached_at
        if at is not None:
            end = sess.expires_at(sess.stall_mark)  # no stretch yet: the earliest end
            heapq.heappush(self._waiting, (end, next(self._order), sess.sid, at))

    async def run(self) -> None:
        """Tick forever (the host cancels it)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.host.tick)
            self.tick(loop.time())

    def tick(self, now: float) -> None:
        """Everything due at ``now`` (the loop's time)."""
        host = self.host
        stalled = host.stalled(now)
        for sess in list(host.sessions.values()):
            if sess.state is _DETACHED:
                continue  # in the heap
            deadline = sess.next_deadline(stalled)
            if deadline is not None and deadline <= now:
                self._poll(sess, now, stalled)
        waiting, sessions = self._waiting, host.sessions
        while waiting and waiting[0][0] <= now:
            _, _, sid, at = heapq.heappop(waiting)
            found = sessions.get(sid)
            if found is None or found.state is not _DETACHED or found.detached_at != at:
                continue  # ended, or resumed since (a later detach has its own entry)
            end = found.expires_at(stalled)
            if end > now:  # stretched while the node shed load
                heapq.heappush(waiting, (end, next(self._order), sid, at))
                continue
            self._poll(found, now, stalled)
        host.forget_tombstones(now)
        host.issuer.prune(time.time())

    def _poll(self, sess: ServerSession, now: float, stalled: float) -> None:
        host = self.host
        for action in sess.poll(now, stalled):
            if action.kind in ("ping", "flush"):
                host.wake(sess)
            elif action.kind == "close":
                host.close_session(sess, action.code, action.reason)
            elif action.kind == "expire":
                host.expire(sess)
