"""The ping interval a client may ask for at negotiate: shorter (adaptive heartbeats) or
longer (battery profile).

A client behind something that cuts idle connections sooner than the server's
``ping_interval`` (a proxy or NAT with a short idle timeout) sees its connections cut at
a consistent idle time and reconnects again and again: it asks for a shorter interval. A
mobile client that would rather wake its radio less often asks for a longer one, and
accepts that a dead connection is noticed later. Either way it sends ``ping_interval``
(milliseconds) in its negotiate body. The server grants it within
``[min_ping_interval, max_ping_interval]`` (the latter defaults to ``ping_interval``:
longer only if the operator allows it) and answers the interval it will use; the
session is then pinged that often (WebSocket, SSE) and its long polls held at most that
long (:func:`poll_hold`); its silence limit grows with a longer interval
(:func:`dead_after`). No I/O, no clock.
"""

from __future__ import annotations

from typing import Any

from .errors import RemoteProtocolError
from .settings import Settings

__all__ = [
    "asked_interval",
    "dead_after",
    "grant_interval",
    "keepalive_period",
    "longest_hold",
    "poll_hold",
]


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
    ``min_ping_interval`` and ``max_ping_interval`` (:attr:`Settings.ping_ceiling`)."""
    if asked is None:
        return settings.ping_interval
    floor = min(settings.min_ping_interval, settings.ping_interval)
    return max(floor, min(asked, settings.ping_ceiling))


def poll_hold(settings: Settings, interval: float) -> float:
    """How long a long poll of a session granted ``interval`` is held: ``poll_window``,
    no longer than a shorter interval (an idle path must not stay silent longer than
    the client asked for), up to a longer one (fewer polls: the battery profile)."""
    if interval < settings.ping_interval:
        return min(interval, settings.poll_window)
    if interval > settings.ping_interval:
        return max(interval, settings.poll_window)
    return settings.poll_window


def dead_after(settings: Settings, server_ping: bool, interval: float) -> float:
    """The silence after which a session granted ``interval`` is declared dead.

    Pinged transports: the server's usual ``ping_interval + ping_timeout`` (a shorter
    interval only adds traffic), or ``interval + ping_timeout`` for a longer one (the
    client's pongs come that rarely). Long-poll: likewise ``poll_window + ping_timeout``,
    or a longer hold plus ``ping_timeout``.
    """
    if server_ping:
        return max(settings.ping_interval, interval) + settings.ping_timeout
    return max(settings.poll_window, poll_hold(settings, interval)) + settings.ping_timeout


def longest_hold(settings: Settings) -> float:
    """The longest any poll may be held on this server (a forwarded poll waits that long
    plus ``ping_timeout``)."""
    return poll_hold(settings, settings.ping_ceiling)


def keepalive_period(settings: Settings, keepalive: float, interval: float | None) -> float:
    """How often an SSE stream of a session granted ``interval`` (None: the server's
    own) sends a comment keepalive, so that no proxy sees it idle.

    Default and shorter grants: ``keepalive`` (15 s), no longer than ``ping_interval``,
    as always. A longer grant (battery profile): the granted interval itself; a comment
    every 15 s would wake the client's radio as often as if it had asked for nothing.
    The operator's ``max_ping_interval`` bounds it, and must stay below the idle
    timeout of any proxy in front (docs/deployment.md).
    """
    if interval is not None and interval > settings.ping_interval:
        return interval
    return min(keepalive, settings.ping_interval)
