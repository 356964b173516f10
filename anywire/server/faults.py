"""Deliberate faults on one session's outgoing frames, for testing clients (the
conformance kit, ``anywire conformance``): expire a session now, repeat frames already
written, hold and reorder, duplicate, lose frames, and drop the connection after a
chosen frame.

The hook sits between the session host and the link: :meth:`SessionHost.outgoing` hands
the sequenced frames it takes from a session's outbox to :meth:`Faults.pending` when
``host.faults`` is set (one attribute check per write when it is not: nothing else runs).
A fault is armed per session and spends itself: once its frames went by, the session is
served as usual. Frames a fault withholds stay in the session's outbox (unacknowledged),
so a resume, or the next long-poll ``ack``, delivers them again, as after a real loss.

Not seen by faults: the immediate answer of a plain handler on the request/response path
(:meth:`SessionHost.answer` writes it whole when nothing else is pending); the kit's
handlers are coroutines, whose acks go through ``outgoing``.

Usage::

    faults = Faults.install(aw)     # once, before the app serves
    faults.reorder(sock, 5)         # the next 5 frames go out in reverse order
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.closecodes import CloseCode
from ..core.codec import Outgoing
from ..core.session import ServerSession
from ..transports.base import Link

if TYPE_CHECKING:
    from .app import Anywire
    from .host import SessionHost
    from .socket import Socket

__all__ = ["Faults"]

Pending = list[tuple[int, Outgoing]]


@dataclass
class _Armed:
    """What is armed on one session: counts of frames still to be affected."""

    reorder: int = 0  # frames still to hold; released reversed when it reaches 0
    held: Pending | None = None
    duplicate: int = 0  # frames still to write twice
    lose: int = 0  # frames still to swallow
    drop_after: int | None = None  # frames still to write before the connection is cut
    link: Link | None = None  # the connection the fault was armed on

    def spent(self) -> bool:
        return (
            not self.reorder
            and not self.held
            and not self.duplicate
            and not self.lose
            and self.drop_after is None
        )


class Faults:
    """The fault hook of one node's session host. Every method takes the session's
    :class:`~anywire.server.Socket` and returns how many frames it affected (or will)."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self._armed: dict[str, _Armed] = {}
        self.applied: dict[str, int] = {}
        """Per session id: frames a fault actually touched (held, repeated, lost...).
        Never pruned: the hook is for tests, not for production servers."""

    @classmethod
    def install(cls, aw: Anywire) -> Faults:
        """The app's fault hook, installed on its host (once; later calls return it)."""
        host = aw.host
        if host.faults is None:
            host.faults = cls(host)
        return host.faults

    # -- immediate faults ---------------------------------------------------------------------

    def expire(self, sock: Socket) -> bool:
        """Forget the session now, as its resume window passing would (its stream stays:
        a client coming back keeps its sid, gets ``recovered: false`` and catches up).
        Close its connection first (e.g. ``sock.disconnect(4000)``) to make it a resume.
        Returns False if the session was already gone."""
        sess = self.host.sessions.get(sock.sid)
        if sess is None:
            return False
        self.host._expire(sess, run_hooks=True, end="expired")
        return True

    def repeat(self, sock: Socket, n: int) -> int:
        """Hand the last ``n`` frames already written to the connection again (same
        sequence numbers), as a retransmission would; only frames the client has not
        acknowledged are still there to repeat. Returns how many will be repeated."""
        sess = self._session(sock)
        if sess is None:
            return 0
        again = max(0, min(n, sess.written - (sess.floor - 1)))
        sess.written -= again
        link = sess.connection
        if again and isinstance(link, Link):
            link.wake()  # nothing new may be pushed to wake its writer
        self._count(sess.sid, again)
        return again

    # -- faults on the next frames ------------------------------------------------------------

    def reorder(self, sock: Socket, k: int) -> int:
        """Hold the next ``k`` frames and write them all at once, last first."""
        return self._arm(sock, k, _Armed(reorder=k, held=[]))

    def duplicate(self, sock: Socket, k: int) -> int:
        """Write each of the next ``k`` frames twice in a row."""
        return self._arm(sock, k, _Armed(duplicate=k))

    def lose(self, sock: Socket, k: int) -> int:
        """Swallow the next ``k`` frames (taken from the outbox but never written), as a
        lost long-poll response or a lost stretch of a stream would lose them."""
        return self._arm(sock, k, _Armed(lose=k))

    def drop_after(self, sock: Socket, k: int) -> int:
        """Write the next ``k`` frames, then close the connection with 4000 (a reconnect
        code; the session stays): what follows waits in the outbox for the resume."""
        return self._arm(sock, k, _Armed(drop_after=k))

    def _arm(self, sock: Socket, k: int, armed: _Armed) -> int:
        """Arm ``armed`` on the session (replacing what was armed); 0 if it is gone."""
        if k < 1:
            raise ValueError(f"a fault needs k >= 1 frames, got {k}")
        sess = self._session(sock)
        if sess is None:
            return 0
        link = sess.connection
        armed.link = link if isinstance(link, Link) else None
        self._armed[sess.sid] = armed
        return k

    def _session(self, sock: Socket) -> ServerSession | None:
        return self.host.sessions.get(sock.sid)

    def _count(self, sid: str, n: int) -> None:
        if n:
            self.applied[sid] = self.applied.get(sid, 0) + n

    # -- the hook -----------------------------------------------------------------------------

    def pending(self, link: Link, sess: ServerSession, frames: Pending) -> Pending:
        """Called by :meth:`SessionHost.outgoing` with the frames it took from ``sess``'s
        outbox for ``link``; returns what to write instead."""
        armed = self._armed.get(sess.sid)
        if armed is None:
            return frames
        if armed.link is not None and armed.link is not link:
            # The connection the fault was armed on is gone: what it held is still in the
            # outbox and goes out again from the resume point.
            del self._armed[sess.sid]
            return frames
        out: Pending = []
        for frame in frames:
            if armed.lose:
                armed.lose -= 1
                self._count(sess.sid, 1)
                continue
            if armed.reorder and armed.held is not None:
                armed.held.append(frame)
                armed.reorder -= 1
                self._count(sess.sid, 1)
                if not armed.reorder:
                    out.extend(reversed(armed.held))
                    armed.held = None
                continue
            out.append(frame)
            if armed.duplicate:
                armed.duplicate -= 1
                out.append(frame)
                self._count(sess.sid, 1)
            if armed.drop_after is not None:
                armed.drop_after -= 1
                if armed.drop_after <= 0:
                    # The rest stays unwritten in the outbox, for the resume.
                    sess.written = frame[0]
                    armed.drop_after = None
                    self._count(sess.sid, 1)
                    link.close(CloseCode.SHUTDOWN, "conformance: drop at a chosen frame")
                    break
        if armed.spent():
            del self._armed[sess.sid]
        return out
