"""Exceptions raised by the Python client.

Every one derives from :class:`ClientError`, so ``except ClientError`` catches anything
the client raises on purpose. :class:`AckTimeout` is also a :class:`TimeoutError`, and
:class:`FrameTooLarge` a :class:`ValueError`, so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "AckError",
    "AckTimeout",
    "AuthError",
    "ClientError",
    "ConnectError",
    "ConnectionClosed",
    "FrameTooLarge",
    "QueueFull",
    "RequestLost",
]


class ClientError(Exception):
    """Base class of every client error."""


class ConnectError(ClientError):
    """Negotiate failed, or no offered transport delivered a hello in time.

    ``code`` is the anywire close code the server gave, if any (e.g. 4507 when no common
    transport exists). ``retry_after`` is the wait in seconds the server asked for
    (``Retry-After`` of a 503 or 429 negotiate: session caps, negotiate rate), if any;
    the client never negotiates again sooner.
    """

    def __init__(
        self, message: str, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class AuthError(ConnectError):
    """The server refused the credentials (HTTP 401, close code 4501) or the connection
    itself (HTTP 403 / close code 4505: origin not allowed, connect hook rejected it).
    Retrying with the same credentials cannot help, so the client never does."""


class AckTimeout(ClientError, TimeoutError):
    """No acknowledgement arrived in time.

    Distinct from every other failure: the frame may still reach the server later (it
    stays queued for retransmission), only the wait for its answer is over.
    """


class AckError(ClientError):
    """The server answered with an error acknowledgement: ``code`` is machine-readable
    (``handler_error``, ``no_handler``, ``forbidden``...), ``message`` human-readable."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class ConnectionClosed(ClientError):
    """The client is closed for good: by :meth:`Client.close`, by a terminal close code
    from the server (``code``, ``reason``), or because reconnecting is disabled."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        detail = f" ({code})" if code is not None else ""
        super().__init__(f"connection closed{detail}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class QueueFull(ClientError):
    """``max_queue`` frames already await the server's confirmation (the client is
    offline, or the server does not keep up). The new frame was not queued: the caller
    decides whether to drop it or retry later."""


class FrameTooLarge(ClientError, ValueError):
    """The encoded frame exceeds the server's ``max_frame_size``; it was not queued (the
    server would refuse it and end the session)."""


class RequestLost(ClientError):
    """The session that received this request was lost before it answered (its node
    failed): the server may or may not have processed the request, and no answer will
    come. Raised at once when the client's next session starts, instead of waiting for a
    timeout. (Requests the old session had not received yet are sent again and answered
    as usual; joins are always sent again.)"""
