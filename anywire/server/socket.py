"""The application's handle on one client session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.closecodes import CloseCode
from ..core.codec import Outgoing
from ..core.session import ServerSession, SessionState

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

    async def emit(self, event: str, data: Any = None) -> None:
        """Send ``event`` to this session (delivered in order, resumed after a drop)."""
        if self._session.state is not SessionState.CLOSED:
            out = Outgoing("event", {"e": event, "d": data})
            self._host.encodable(out)  # TypeError here, not in the writer
            self._host.push(self._session, out)

    async def call(self, event: str, data: Any = None, timeout: float | None = None) -> Any:
        """Send ``event`` and return the client's acknowledgement data.

        Raises :class:`~anywire.server.errors.AckTimeout` when no ack arrives in time,
        :class:`~anywire.server.errors.AckError` when the client's handler failed and
        :class:`~anywire.server.errors.Disconnected` if the session ends first.
        """
        return await self._host.call(self._session, event, data, timeout)

    async def join(self, room: str, meta: Any = None) -> None:
        """Put this session in ``room`` (server side; no authorization hook runs)."""
        self._host.join(self._session, room, meta)

    async def leave(self, room: str) -> None:
        """Take this session out of ``room``."""
        self._host.leave(self._session, room)

    async def disconnect(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the connection; a terminal code (the default) also ends the session."""
        self._host.close_session(self._session, code, reason)

    def __repr__(self) -> str:
        return f"<Socket sid={self.sid} user={self.user} ns={self.namespace}>"
