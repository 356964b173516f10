"""Adaptive heartbeats: the ping interval a client may ask for at negotiate.

A client behind something that cuts idle connections sooner than the server's
``ping_interval`` (a proxy or NAT with a short idle timeout) sees its connections cut at
a consistent idle time and reconnects again and again. It can ask for a shorter interval
in its negotiate body (``ping_interval``, in milliseconds). The server grants it within
``[min_ping_interval, ping_interval]`` and answers the interval it will use; the session
is then pinged that often (WebSocket, SSE) and its long polls held at most that long.
No I/O, no clock.
"""

from __future__ import annotations

from typing import Any

from .errors import RemoteProtocolError
from .settings import Settings

__all__ = ["asked_interval", "grant_interval"]


def asked_interval(value: Any) -> float | None:
    """The interval a negotiate body asks for, in seconds (None: not asked).

    Raises :class:`RemoteProtocolError` (400/4502) unless it is a positive integer of
    milliseconds.
    """
    if value is None:
        return None
    if type(value) is not int or value <= 0:
        raise RemoteProtocolError("ping_interval must be a positive integer (milliseconds)")
    return value / 1000


def grant_interval(settings: Settings, asked: float | None) -> float:
    """The interval the session will use: what was asked, bounded by the server's
    ``min_ping_interval`` and its own ``ping_interval`` (never longer)."""
    if asked is None:
        return settings.ping_interval
    floor = min(settings.min_ping_interval, settings.ping_interval)
    return max(floor, min(asked, settings.ping_interval))
