"""How each connection keeps itself alive, with the interval its negotiate was granted
(adaptive heartbeats, core/pinginterval.py), and how many sessions use a shorter one."""

from __future__ import annotations

from collections.abc import Iterable

from ..core.session import Heartbeat, ServerSession
from ..core.settings import Settings

__all__ = ["heartbeat", "shortened"]


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
    """Sessions pinged more often than ``ping_interval`` (metrics ``sessions_short_ping``)."""
    return sum(
        1
        for sess in sessions
        if sess.heartbeat.ping_interval is not None
        and sess.heartbeat.ping_interval < settings.ping_interval
    )
