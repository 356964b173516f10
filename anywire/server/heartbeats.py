"""How each connection keeps itself alive, with the interval its negotiate was granted
(adaptive heartbeats, core/pinginterval.py), and how many sessions use a shorter one."""

from __future__ import annotations

from collections.abc import Iterable

from ..core.session import Heartbeat, ServerSession
from ..core.settings import Settings
from ..transports.base import Link

__all__ = ["apply", "heartbeat", "shortened"]


def apply(settings: Settings, link: Link, interval: float | None) -> Heartbeat:
    """The heartbeat of a new connection whose negotiate was granted ``interval`` (None:
    the server's own); a long-poll link also holds its polls at most that long, so an
    idle path never stays silent longer than the client asked for."""
    if interval is not None and not link.info.server_ping:
        link.hold = interval
    return heartbeat(settings, link.info.server_ping, interval)


def heartbeat(settings: Settings, server_ping: bool, interval: float | None) -> Heartbeat:
    """WebSocket and SSE (``server_ping``): pinged every ``interval`` (the server's
    ``ping_interval`` unless a shorter one was granted); long-poll: each poll is the
    heartbeat."""
    if server_ping:
        every = settings.ping_interval if interval is None else interval
        # Dead after the server's usual silence: a shorter interval only adds traffic.
        return Heartbeat(every, settings.ping_interval + settings.ping_timeout)
    return Heartbeat(None, settings.poll_window + settings.ping_timeout)


def shortened(sessions: Iterable[ServerSession], settings: Settings) -> int:
    """Sessions pinged more often than ``ping_interval``, or polled with a shorter hold
    (metrics ``sessions_short_ping``)."""
    return sum(1 for sess in sessions if _short(sess, settings))


def _short(sess: ServerSession, settings: Settings) -> bool:
    every = sess.heartbeat.ping_interval
    if every is not None:
        return every < settings.ping_interval
    link = sess.connection
    return isinstance(link, Link) and link.hold is not None
