"""An open-ended ``$lost`` is announced to a session once.

Two parts of a node can find the same loss for one session: the node's gap tracker, when
a stream's history restarted (its epoch vanished: Redis failed over or restarted empty,
``GapTracker.restart``), announces ``$lost`` from its own position to every local
consumer; and a session's catch-up (a rejoin after the client moved to a fresh session)
finds the same epoch gone and announces ``$lost`` from the client's position. Both are
open-ended (``to`` null: everything after ``from - 1`` in that epoch, count unknown), and
:meth:`~anywire.core.session.ServerSession.clip_lost` cannot tell the second from news:
an open-ended loss does not move the session's position, and once the session moved on
to the new epoch it compares nothing (docs/reliability/sentinel-duplicates.md, "Left").

:class:`Announced` remembers, per session and stream, the open-ended loss it was told
of, and says when a later one is covered by it: same epoch, starting at or after it, and
the session was given nothing of that epoch past its start since. A bounded loss is
always news (it moves the session's position; clip_lost handles it).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..core.session import ServerSession
from ..core.streams import Lost

__all__ = ["Announced"]


class Announced:
    """Open-ended losses announced to the sessions of one host.

    :param sessions: the host's live sessions by sid: a session that ended (or was
        replaced by a fresh copy under its sid) is forgotten, so what is kept stays
        within a small multiple of the live sessions.
    """

    def __init__(self, sessions: Mapping[str, ServerSession]) -> None:
        self._sessions = sessions
        self._open: dict[str, tuple[ServerSession, dict[str, tuple[str, int]]]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def covered(self, sess: ServerSession, lost: Lost) -> bool:
        """Whether ``lost`` (about to be sent to ``sess``) says nothing the session was
        not told already; if not, it counts as announced."""
        if lost.last is not None:
            return False
        entry = self._open.get(sess.sid)
        if entry is None or entry[0] is not sess:
            entry = self._open[sess.sid] = (sess, {})
            self._sweep()
        told = entry[1]
        before = told.get(lost.stream)
        if before is not None and before[0] == lost.epoch and before[1] <= lost.first:
            pos = None if sess.positions is None else sess.positions.get(lost.stream)
            # Past the announced start in that epoch since: events came after all, and
            # this loss (from later on) is news.
            if pos is None or pos[1] != lost.epoch or pos[2] < before[1]:
                return True
        told[lost.stream] = (lost.epoch, lost.first)
        return False

    def _sweep(self) -> None:
        if len(self._open) <= 2 * len(self._sessions) + 64:
            return
        live = self._sessions
        self._open = {sid: entry for sid, entry in self._open.items() if live.get(sid) is entry[0]}
