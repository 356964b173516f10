"""Credential lifetime on live sessions: in-band refresh, the expiry guard, refusals.

* **Refresh** (protocol section 11.4): a client sends ``auth{id, token}`` with a fresh
  credential on its live connection, on any transport; it is checked by the same
  authenticator as negotiate and must name the same user. Accepted, its ``exp`` becomes
  the session's deadline and the client gets ``ack{id, ok: true, d: {expires_in}}``;
  refused, the session keeps its old deadline and the client gets the error ack
  ``unauthorized`` (the connection lives on until that deadline).
* **Guard**: once the deadline has passed, no client frame of the session is handled on
  any path (a WebSocket message, ``POST /send``, a poll): the connection is closed with
  4004 TOKEN_EXPIRED at once, not at the next timer tick, and a later request with its
  session token is refused the same way until the client resumes with a fresh
  credential.
* **Refusals**: every credential refusal answers the same body
  ``{"error": "unauthorized", "code": 4501, "message": "authentication failed"}``; the
  check that failed goes to one log line and to the ``auth_refused_<kind>`` counter of
  the metrics.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..core.auth import Identity
from ..core.closecodes import CloseCode
from ..core.errors import AuthError, ProtocolError
from ..core.frames import Auth, Frame
from ..core.session import ServerSession, SessionState
from ..transports.base import Scope, Send, send_json_error

if TYPE_CHECKING:
    from .host import SessionHost

__all__ = ["REFUSED", "Refresher", "deadline_of", "expires_in_ms"]

log = logging.getLogger("anywire")

REFUSED = "authentication failed"
"""The one message every credential refusal carries (the reason is logged, not sent)."""


def expires_in_ms(identity: Identity, wall: float | None = None) -> int | None:
    """Milliseconds until ``identity``'s credential expires (0 if it has), None if never."""
    if identity.expires_at is None:
        return None
    now = time.time() if wall is None else wall
    return max(0, int((identity.expires_at - now) * 1000))


def deadline_of(identity: Identity, now: float) -> float | None:
    """When ``identity``'s credential expires on the loop's clock (``now`` is its time):
    the deadline of a session it opens or resumes; None if never."""
    if identity.expires_at is None:
        return None
    return now + identity.expires_at - time.time()


class Refresher:
    """The credential rules of one node's sessions (owned by the session host)."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host

    # -- the guard ------------------------------------------------------------------------
    def guard(self, sess: ServerSession, now: float) -> None:
        """Raise ProtocolError 4004 (after closing the live connection with it) if the
        session's credential has expired: nothing of the client may run any more."""
        deadline = sess.auth_deadline
        if deadline is not None and now >= deadline:
            self.expired(sess)

    def expired(self, sess: ServerSession) -> None:
        """Close ``sess``'s connection with 4004 and raise it (see :meth:`guard`)."""
        if sess.state is SessionState.ATTACHED:
            self.host.close_session(sess, CloseCode.TOKEN_EXPIRED, "token expired")
        self.host.counters["auth_expired_refused"] = (
            self.host.counters.get("auth_expired_refused", 0) + 1
        )
        raise ProtocolError("token expired", CloseCode.TOKEN_EXPIRED)

    # -- in-band refresh ------------------------------------------------------------------
    def dispatch(self, sess: ServerSession, frame: Frame) -> None:
        """A client frame the host's dispatch does not handle itself: ``auth``."""
        if isinstance(frame, Auth):
            self.refresh(sess, frame)

    def refresh(self, sess: ServerSession, frame: Auth) -> None:
        """Check the fresh credential of an ``auth`` frame and answer it (an ack)."""
        scope: Scope = {
            "type": "anywire.refresh",
            "headers": [(b"authorization", f"Bearer {frame.token}".encode("latin-1", "replace"))],
            "sid": sess.sid,
        }
        try:
            result = self.host.app.auth(frame.token, scope)
        except AuthError as exc:
            self._refuse(sess, frame, exc.kind, exc.message)
            return
        if inspect.isawaitable(result):
            self.host.spawn(self._finish(sess, frame, result), sess.sid)
            return
        self._apply(sess, frame, result)

    async def _finish(self, sess: ServerSession, frame: Auth, pending: Awaitable[Any]) -> None:
        try:
            identity = await pending
        except AuthError as exc:
            self._refuse(sess, frame, exc.kind, exc.message)
            return
        self._apply(sess, frame, identity)

    def _apply(self, sess: ServerSession, frame: Auth, identity: Any) -> None:
        if not isinstance(identity, Identity):
            self._refuse(sess, frame, "invalid", "authenticator returned no identity")
            return
        if sess.anonymous or identity.user is None or identity.user != sess.user:
            # A credential of someone else must never take over this session.
            self._refuse(sess, frame, "other_user", f"refresh for user {identity.user!r}")
            return
        if sess.state is SessionState.CLOSED:
            return
        wall = time.time()
        remaining = expires_in_ms(identity, wall)
        now = asyncio.get_running_loop().time()
        if remaining is None:
            sess.auth_deadline = None
        else:
            sess.auth_deadline = now + remaining / 1000
        socket = self.host.sockets.get(sess.sid)
        if socket is not None:
            socket.claims = identity.claims
        self._count("auth_refreshed")
        answer = {} if remaining is None else {"expires_in": remaining}
        self.host.reply(sess, frame.id, True, answer)

    def _refuse(self, sess: ServerSession, frame: Auth, kind: str, reason: str) -> None:
        """The session keeps its old deadline; the client learns no more than that."""
        self.note_refusal(kind, reason, "refresh", sess.sid)
        self.host.reply(sess, frame.id, False, None, "unauthorized", REFUSED)

    # -- refusals -------------------------------------------------------------------------
    def note_refusal(self, kind: str, reason: str, where: str, sid: str | None = None) -> None:
        """One log line and one counter for a refused credential."""
        self._count("auth_refused")
        self._count(f"auth_refused_{kind}")
        self.host.app.observers.auth_failed(kind, where)
        log.warning(
            "anywire: credential refused at %s%s (%s): %s",
            where,
            "" if sid is None else f" of session {sid}",
            kind,
            reason[:200],
        )

    async def refuse_http(
        self, send: Send, exc: AuthError, cors: list[tuple[bytes, bytes]], where: str
    ) -> None:
        """Answer a refused credential with the uniform 401 body."""
        self.note_refusal(exc.kind, exc.message, where)
        await send_json_error(send, 401, ProtocolError(REFUSED, CloseCode.UNAUTHORIZED), cors)

    def _count(self, key: str) -> None:
        counters = self.host.counters
        counters[key] = counters.get(key, 0) + 1
