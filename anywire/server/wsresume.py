"""Resume over the WebSocket without negotiating (protocol section 2.2.1): a base class
of :class:`~anywire.server.host.SessionHost`.

A client that holds a session token and last used the WebSocket opens the WebSocket
directly and sends ``resume{token, last, auth}`` as its first frame. In a reconnect
storm that is one pass through the kernel's accept queue per resume instead of two
(negotiate, then the upgrade with its ticket, behind the crowd's negotiates:
docs/perf/storm-round3.md).

The frame is checked as negotiate checks a resuming request, in negotiate's order, and
then served exactly as a resume through negotiate and ticket is: a ticket is issued for
the session here (the same :meth:`~.issuer.Issuer.issue` negotiate calls) and redeemed at
once by :meth:`~.host.SessionHost.attach`, so the hello, the replay, the 4005 to an older
connection and the metrics are those of every resume. What differs is only what a
refusal looks like (a close code, since there is no HTTP answer to carry it):

* the node sheds load, or the address has spent its negotiate rate: 4000 or 4008, with
  ``retry_after=N`` (seconds) at the end of the close reason;
* the session's flood budget is spent: 4008 with ``retry_after=N``;
* the token is not a valid session token, its session is not on this node, belongs to
  another namespace or user, or cannot be replayed from ``last``: 4007, "negotiate"
  (the client negotiates with ``resume`` as before and gets ``recovered: false``);
* the credential is refused: 4501, the answer negotiate gives (terminal: no retry loop).

Nothing is created for a refused frame: a fresh session is only ever started by a
negotiate's ticket, which holds the session caps' slot for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.auth import Identity
from ..core.closecodes import CloseCode
from ..core.errors import AuthError, ProtocolError
from ..core.flood import FloodError
from ..core.frames import Resume, ResumeDirect
from ..core.session import ServerSession
from ..transports.base import Link, Scope
from .admin import authenticate
from .admission import client_ip
from .refresh import REFUSED, expires_in_ms

if TYPE_CHECKING:
    from .app import Anywire
    from .issuer import Issuer
    from .refresh import Refresher

__all__ = ["DirectResumes", "retry_reason"]


def retry_reason(message: str, retry_after: float) -> str:
    """A close reason that carries the wait a client must observe (whole seconds, at
    least 1): ``"<message>; retry_after=N"``. The reason is cut to 120 bytes when sent,
    so the message is shortened here, never the number."""
    seconds = max(1, int(-(-retry_after // 1)))
    tail = f"; retry_after={seconds}"
    return message[: 120 - len(tail)] + tail


class DirectResumes:
    """``resume_direct()`` of the host's :class:`~anywire.transports.base.Host`
    protocol."""

    app: Anywire
    issuer: Issuer
    refresher: Refresher
    sessions: dict[str, ServerSession]
    counters: dict[str, int]
    closing: bool

    async def attach(self, link: Link, first: Any, expires_in: int | None = None) -> None:
        raise NotImplementedError  # SessionHost's

    async def resume_direct(self, scope: Scope, link: Link, first: ResumeDirect) -> None:
        """Resume the session ``first.token`` names on ``link`` (see the module
        docstring); raises ProtocolError with the close code of a refusal."""
        try:
            await self._resume_direct(scope, link, first)
        except ProtocolError:
            self._count("ws_resume_refused")
            raise
        self._count("ws_resumes")

    async def _resume_direct(self, scope: Scope, link: Link, first: ResumeDirect) -> None:
        if self.closing:
            raise ProtocolError("server shutting down", CloseCode.SHUTDOWN)
        issuer = self.issuer
        refusal = await issuer.gate.refuse_upgrade(scope)
        if refusal is not None:
            raise ProtocolError(retry_reason(refusal.message, refusal.retry_after), refusal.code)
        try:
            # As negotiate: the session's budget before the credential is looked at.
            issuer.charge_resume(first.token)
        except FloodError as exc:
            raise ProtocolError(retry_reason(exc.message, exc.retry_after), exc.code) from exc
        try:
            sid, fields = issuer.session_of(first.token)
        except ProtocolError:
            raise _negotiate("invalid session token") from None
        sess = self.sessions.get(sid)
        namespace = fields.get("ns")
        if sess is None or not isinstance(namespace, str) or sess.namespace != namespace:
            raise _negotiate("session not on this node")
        if not sess.can_resume(first.last):
            raise _negotiate("session cannot be replayed from there")
        identity = await self._authenticate(scope, namespace, first.auth)
        if not issuer.resumes(identity, namespace, first.token):
            raise _negotiate("session of another user")
        codec = "msgpack" if link.codec.binary else "json"
        issued = await issuer.issue(
            identity, namespace, codec, first.token, {}, client_ip(scope),
            sess.heartbeat.ping_interval,  # what its negotiate was granted
        )  # fmt: skip
        # The session was checked above with no await in between that could end it
        # (issue() awaits only for positions, and none are sent): attach resumes it.
        # Its hello says when this credential expires, as negotiate's answer would
        # (the client plans its in-band refresh from it: section 11.4).
        await self.attach(link, Resume(issued.ticket, first.last), expires_in_ms(identity))

    async def _authenticate(self, scope: Scope, namespace: str, credential: str | None) -> Identity:
        """The caller's identity, from the credential negotiate would be sent (4501 and
        negotiate's log line and counters when refused)."""
        try:
            return await authenticate(self.app, namespace, credential, scope)
        except AuthError as exc:
            self.refresher.note_refusal(exc.kind, exc.message, "websocket resume")
            raise ProtocolError(REFUSED, CloseCode.UNAUTHORIZED) from None

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1


def _negotiate(why: str) -> AuthError:
    """The refusal that sends the client to negotiate (4007)."""
    return AuthError(f"{why}: negotiate", CloseCode.SESSION_UNKNOWN, "session")
