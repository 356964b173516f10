"""How each connection keeps itself alive, with the interval its negotiate was granted
(adaptive heartbeats and the battery profile, core/pinginterval.py), and how many
sessions use a shorter one (``sessions_short_ping``) or a longer one
(``sessions_long_ping``)."""

from __future__ import annotations

from collections.abc import Iterable

from ..core.pinginterval import dead_after, poll_hold
from ..core.session import Heartbeat, ServerSession
from ..core.settings import Settings
from ..transports.base import Link

__all__ = ["apply", "heartbeat", "lengthened", "shortened"]


def apply(settings: Settings, link: Link, interval: float | None) -> Heartbeat:
    """The heartbeat of a new connection whose negotiate was granted ``interval`` (None:
    the server's own); a long-poll link also holds its polls for the granted interval
    (no longer than a shorter one, up to a longer one: core/pinginterval.py)."""
    link.interval = interval
    if interval is not None and not link.info.server_ping:
        link.hold = poll_hold(settings, interval)
    return heartbeat(settings, link.info.server_ping, interval)


def heartbeat(settings: Settings, server_ping: bool, interval: float | None) -> Heartbeat:
    """WebSocket and SSE (``server_ping``): pinged every ``interval`` (the server's
    ``ping_interval`` unless another was granted); long-poll: each poll is the
    heartbeat. Dead after the silence :func:`~anywire.core.pinginterval.dead_after`
    allows the granted interval."""
    every = settings.ping_interval if interval is None else interval
    return Heartbeat(every if server_ping else None, dead_after(settings, server_ping, every))


def shortened(sessions: Iterable[ServerSession], settings: Settings) -> int:
    """Sessions pinged more often than ``ping_interval``, or polled with a shorter hold
    (metrics ``sessions_short_ping``)."""
    return sum(1 for sess in sessions if _short(sess, settings))


def _short(sess: ServerSession, settings: Settings) -> bool:
    every = sess.heartbeat.ping_interval
    if every is not None:
        return every < settings.ping_interval
    link = sess.connection
    # A battery-profile session's longer hold is not short.
    return isinstance(link, Link) and link.hold is not None and link.hold < settings.poll_window


def lengthened(sessions: Iterable[ServerSession], settings: Settings) -> int:
    """Sessions on a longer interval than ``ping_interval`` (the battery profile:
    pinged less often, or polled with a longer hold than ``poll_window``; metrics
    ``sessions_long_ping``)."""
    return sum(1 for sess in sessions if _long(sess, settings))


def _long(sess: ServerSession, settings: Settings) -> bool:
    every = sess.heartbeat.ping_interval
    if every is not None:
        return every > settings.ping_interval
    link = sess.connection
    return isinstance(link, Link) and link.hold is not None and link.hold > settings.poll_window
