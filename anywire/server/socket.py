"""The application's handle on one client session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.closecodes import CloseCode
from ..core.frames import StreamPos
from ..core.session import ServerSession, SessionState
from .broker import Envelope
from .errors import Disconnected

if TYPE_CHECKING:
    from .host import SessionHost

__all__ = ["Socket"]


class Socket:
    """One connected client session, as handlers, hooks and the app see it.

    It survives transport changes and resumes: ``sid`` stays the same for as long as the
    session can be resumed.
    """

    __slots__ = ("_host", "_session", "claims", "data")

    def __init__(self, host: SessionHost, session: ServerSession, claims: dict[str, Any]) -> None:
        self._host = host
        self._session = session
        self.claims = claims
        """The authenticated claims (e.g. the JWT payload)."""
        self.data: dict[str, Any] = {}
        """Free space for the application's per-session state."""

    @property
    def sid(self) -> str:
        """The session id."""
        return self._session.sid

    @property
    def user(self) -> str | None:
        """The authenticated user id (the JWT ``sub``), None when anonymous."""
        return self._session.user

    @property
    def namespace(self) -> str:
        """The namespace the session connected to."""
        return self._session.namespace

    @property
    def connected(self) -> bool:
        """Whether the session still exists (it may be between connections)."""
        return self._session.state is not SessionState.CLOSED

    @property
    def transport(self) -> str | None:
        """The transport currently carrying the session, if any."""
        link = self._session.connection
        info = getattr(link, "info", None)
        return None if info is None else str(info.name)

    @property
    def rooms(self) -> set[str]:
        """Rooms the session is in."""
        return {room for _, room in self._host.rooms.rooms_of(self.sid)}

    async def emit(self, event: str, data: Any = None) -> StreamPos | None:
        """Send ``event`` to this session, on its own stream: delivered once and in
        order, after drops and resumes, and after a move to another node (see
        :meth:`Anywire.emit`). Returns its stream position (None once the session ended:
        nothing is sent)."""
        sess = self._session
        if sess.state is SessionState.CLOSED:
            return None
        env = Envelope("session", sess.namespace, sess.sid, event, data)
        return await self._host.publish(env)

    async def call(self, event: str, data: Any = None, timeout: float | None = None) -> Any:
        """Send ``event`` and return the client's acknowledgement data.

        The call travels on the session's stream, so it reaches the client even if the
        session moves to another node meanwhile. Raises
        :class:`~anywire.server.errors.AckTimeout` when no ack arrives in time,
        :class:`~anywire.server.errors.AckError` when the client's handler failed and
        :class:`~anywire.server.errors.Disconnected` if the session ends first.
        """
        sess = self._session
        if sess.state is SessionState.CLOSED:
            raise Disconnected("session ended")
        wait = self._host.settings.ack_timeout if timeout is None else timeout
        return await self._host.calls.call(sess.namespace, sess.sid, event, data, wait)

    async def join(self, room: str, meta: Any = None) -> None:
        """Put this session in ``room`` (server side; no authorization hook runs). A
        fresh session that replaces a lost one catches up on the room from the position
        its client held there, like a client join with ``since``."""
        if self._session.state is not SessionState.CLOSED:
            await self._host.joins.enter(self._session, room, meta, None)

    async def leave(self, room: str) -> None:
        """Take this session out of ``room``."""
        self._host.leave(self._session, room)

    async def disconnect(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the connection; a terminal code (the default) also ends the session."""
        self._host.close_session(self._session, code, reason)

    def __repr__(self) -> str:
        return f"<Socket sid={self.sid} user={self.user} ns={self.namespace}>"
