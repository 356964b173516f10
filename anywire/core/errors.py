"""Errors raised by the core.

Following h11, errors are split by whose fault they are: :class:`RemoteProtocolError` means
the peer sent something invalid (answer it with an error or close code), while
:class:`LocalProtocolError` means our own code misused the API (a bug).
"""

from __future__ import annotations

from .closecodes import CloseCode

__all__ = ["AuthError", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class: carries the close code that describes the problem."""

    def __init__(self, message: str, code: int = CloseCode.BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message


class RemoteProtocolError(ProtocolError):
    """The peer sent an invalid, oversized or out-of-place frame.

    When the invalid frame still carried a usable sequence number ``seq`` (and ack id
    ``ack_id``), the receiver can count it as consumed and answer it with an error ack,
    so one bad frame neither blocks the frames after it nor leaves the sender waiting.
    """

    def __init__(
        self,
        message: str,
        code: int = CloseCode.BAD_REQUEST,
        seq: int | None = None,
        ack_id: int | None = None,
    ) -> None:
        super().__init__(message, code)
        self.seq = seq
        self.ack_id = ack_id


class LocalProtocolError(ProtocolError):
    """Our own side misused the core (a bug, never the peer's fault)."""


class AuthError(ProtocolError):
    """A credential was missing, invalid or expired.

    ``kind`` names the check that failed (``missing``, ``expired``, ``signature``,
    ``audience``, ``issuer``, ``algorithm``, ``malformed``, ``claims``, ...): it goes to
    the server's log and metrics only. Clients are told no more than "authentication
    failed", so a refusal does not help an attacker tune a forged credential.
    """

    def __init__(
        self, message: str, code: int = CloseCode.UNAUTHORIZED, kind: str = "invalid"
    ) -> None:
        super().__init__(message, code)
        self.kind = kind
