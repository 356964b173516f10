"""Close codes shared by the server and every client.

The range says what a client must do, so a client needs no table of individual codes:

* 4000-4499: the client should reconnect (with backoff) and try to resume.
* 4500-4999: terminal; the client must not reconnect on its own.

Standard WebSocket codes that a peer or an intermediary may produce are mapped onto the
same decision by :func:`should_reconnect`.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["RENEGOTIATE", "CloseCode", "should_reconnect"]


class CloseCode(IntEnum):
    """Every close code anywire sends, with its reconnect decision encoded in its range."""

    # -- reconnect range (4000-4499) -----------------------------------------------------
    SHUTDOWN = 4000
    """The server is restarting or shutting down; reconnect (possibly to another node)."""
    PING_TIMEOUT = 4001
    """No frame from the peer within ping_interval + ping_timeout."""
    SLOW_CONSUMER = 4002
    """The client did not read or acknowledge fast enough; its buffer overflowed."""
    INTERNAL_ERROR = 4003
    """An unexpected server error; reconnecting is expected to help."""
    TOKEN_EXPIRED = 4004
    """The credential expired: fetch a fresh token, negotiate again and resume."""
    TRANSPORT_REPLACED = 4005
    """A newer connection of the same session took over (e.g. a transport upgrade)."""
    POLL_TIMEOUT = 4006
    """Long-poll: no poll request arrived within the poll window plus grace."""
    SESSION_UNKNOWN = 4007
    """The session, ticket or token is unknown, expired or already used (e.g. the server
    restarted): negotiate again; the resume will report ``recovered: false``."""
    FLOOD = 4008
    """The client spent its flood budget (``flood_rate`` / ``flood_burst``): the session is
    kept; reconnect after backoff and resume. HTTP answers 429 with ``Retry-After``."""

    # -- terminal range (4500-4999) ------------------------------------------------------
    NORMAL = 4500
    """Closed on purpose by the client or the application."""
    UNAUTHORIZED = 4501
    """Authentication failed (missing, malformed, bad signature, wrong audience...)."""
    BAD_REQUEST = 4502
    """The peer broke the protocol (e.g. the first frame was not connect/resume)."""
    MESSAGE_TOO_BIG = 4503
    """A frame or a batch exceeded ``max_frame_size`` / ``max_batch``."""
    FORBIDDEN = 4505
    """The application refused the connection (connect hook) or the origin."""
    # 4506 is retired (it was FLOOD, terminal; flood is 4008 now).
    TRANSPORT_DISABLED = 4507
    """The transport is disabled in the server configuration."""


RENEGOTIATE: frozenset[int] = frozenset(
    {CloseCode.SHUTDOWN, CloseCode.TOKEN_EXPIRED, CloseCode.SESSION_UNKNOWN}
)
"""Codes that, while opening a transport, mean "negotiate again" (the node is stopping,
the credential must be refreshed, the ticket was not taken) rather than "this transport
failed" (protocol section 12)."""


def should_reconnect(code: int) -> bool:
    """Whether a client that saw ``code`` should reconnect on its own.

    anywire codes decide by range. Of the standard WebSocket codes, 1000 (normal) and the
    policy/size errors 1002, 1003, 1007, 1008, 1009 and 1010 are terminal; everything else
    (1001 going away, 1006 abnormal, 1011 server error, 1012 restart, 1013 try later, ...)
    means a reconnect is worth trying.
    """
    if 4000 <= code <= 4499:
        return True
    if 4500 <= code <= 4999:
        return False
    return code not in (1000, 1002, 1003, 1007, 1008, 1009, 1010)
