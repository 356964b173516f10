"""The flood budget as the session host applies it (a base class of
:class:`~anywire.server.host.SessionHost`).

One budget per session (:mod:`anywire.core.flood`) pays for everything a client makes
the server do. The host charges messages whole in ``feed()``/``answer()`` and polls in
``poll_started()``; this class holds the charges the transports ask for directly (pings
and pongs, a POST before its body is read, resumes) and the handling of invalid frames,
which cost a token like valid ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.closecodes import CloseCode
from ..core.errors import RemoteProtocolError
from ..core.flood import FloodError, TokenBucket
from ..core.session import ServerSession
from ..core.settings import Settings
from ..transports.base import Scope
from .strangers import Strangers

if TYPE_CHECKING:
    from .tracking import Tracker

__all__ = ["MAX_USERS", "Budget"]

MAX_USERS = 100_000
"""Most users whose last budget is remembered (for :meth:`Budget.inherit_debt`)."""


class Budget:
    """Flood-budget and invalid-frame methods of the host's :class:`Host` protocol."""

    sessions: dict[str, ServerSession]
    strangers: Strangers
    user_budgets: dict[tuple[str, str], TokenBucket]
    """Per user, the budget of their last fresh session (see :meth:`inherit_debt`)."""
    counters: dict[str, int]
    track: Tracker
    _clock: Callable[[], float]

    def reply(self, sess: ServerSession, ack_id: int, ok: bool, data: Any, code: str = "",
              message: str = "") -> None:  # fmt: skip
        raise NotImplementedError  # SessionHost's

    def start_budgets(self, settings: Settings) -> None:
        """The budgets that are not a session's: strangers', and users' last ones."""
        self.strangers = Strangers(settings, lambda: self._clock())
        self.user_budgets = {}

    def inherit_debt(self, sess: ServerSession, now: float) -> None:
        """Give a fresh session the budget of its user's last session if that one was
        refused for flood and has not refilled since: otherwise a client closed with
        4008 could start a fresh session, with a full budget, every time (only the
        per-address negotiate rate would bound it). Paced clients are never refused, so
        a user's several tabs keep a budget each. Anonymous sessions are left alone (no
        stable user)."""
        if sess.user is None or sess.anonymous:
            return
        key = (sess.namespace, sess.user)
        last = self.user_budgets.get(key)
        if last is not None and last.refused and not last.has(now, last.burst):
            sess.budget = last
            return
        if len(self.user_budgets) >= MAX_USERS:
            self.user_budgets.clear()  # (a rare reset: only debts are worth keeping)
        self.user_budgets[key] = sess.budget

    async def stranger(self, scope: Scope) -> None:
        """A request named no live session (unknown token or ticket): charge the client's
        address (:mod:`.strangers`) and hold the refusal while that budget is spent."""
        client = scope.get("client")
        hold = self.strangers.hold(str(client[0]) if client else "")
        if hold > 0:
            await asyncio.sleep(hold)

    def charge(self, sid: str, cost: int = 1, what: str = "frames") -> None:
        """Spend ``cost`` of session ``sid``'s flood budget; ``cost`` 0 only checks that it
        is not spent (a cheap refusal before reading a request). Raises FloodError."""
        sess = self.sessions.get(sid)
        if sess is None:
            return  # what the request does next finds out, and says so
        now = self._clock()
        if cost or not sess.budget.has(now):
            self.spend(sess, now, cost or 1, what)

    def spend(self, sess: ServerSession, now: float, cost: int, what: str) -> None:
        """``sess.charge()``, with a refusal counted for the metrics."""
        try:
            sess.charge(now, cost, what)
        except FloodError:
            self.track.flooded(sess)
            raise

    def reject(self, sid: str, error: RemoteProtocolError) -> None:
        """A client frame was invalid. If it carried its sequence number, count it as
        consumed (the frames after it still flow) and answer its ack id with an error."""
        sess = self.sessions.get(sid)
        if sess is None:
            return
        try:
            # Invalid frames cost flood tokens like valid ones.
            sess.charge(asyncio.get_running_loop().time())
        except RemoteProtocolError as exc:
            self._peer_error(sess, exc)
            raise
        if error.seq is None or not sess.skip(error.seq):
            return
        if error.ack_id is not None:
            self.reply(sess, error.ack_id, False, None, "bad_request", error.message)

    def _peer_error(self, sess: ServerSession, exc: RemoteProtocolError) -> None:
        """Count a client's protocol error (a flood is refused by the transport: 4008 on
        a WebSocket, 429 on HTTP; the session is kept)."""
        self.counters["errors"] += 1
        if exc.code == CloseCode.FLOOD:
            self.track.flooded(sess)
