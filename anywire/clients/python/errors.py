"""Exceptions raised by the Python client."""

from __future__ import annotations

__all__ = [
    "AckError",
    "AckTimeout",
    "AuthError",
    "ClientError",
    "ConnectError",
    "ConnectionClosed",
    "QueueFull",
]


class ClientError(Exception):
    """Base class of every client error."""


class ConnectError(ClientError):
    """No offered transport could be opened (or negotiate failed)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class AuthError(ConnectError):
    """The server refused the credentials (HTTP 401, close code 4501) or the connection
    (4505)."""


class AckTimeout(ClientError, TimeoutError):
    """No acknowledgement arrived in time. Distinct from every other failure."""


class AckError(ClientError):
    """The server answered with an error acknowledgement (e.g. ``handler_error``,
    ``no_handler``, ``forbidden``)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class ConnectionClosed(ClientError):
    """The client is closed for good (by the caller, or by a terminal close code)."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"connection closed ({code}): {reason}" if code else "connection closed")
        self.code = code
        self.reason = reason


class QueueFull(ClientError):
    """Too many frames are waiting for the server's confirmation (``max_queue``): the
    client is offline or the server is not keeping up. Nothing was queued."""
