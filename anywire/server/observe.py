"""What the realtime layer does, told to whoever listens: metrics, connection logs, the admin view.

The session host, the negotiate endpoint and the brokers call one :class:`Observers`
object at each event an operator cares about (a connection made or lost, a fallback, a
resume, a refusal). Each listener subclasses :class:`Observer` and overrides the events it
wants; the others cost one no-op call. Hot-path figures (frames and bytes per transport)
are not events: they are plain counters read when a scrape asks for them.

Register a listener with ``Anywire.observe(listener)``. A listener must not block and must
not raise: an exception is logged once and the listener is dropped, so a broken exporter
never breaks delivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["Connection", "Observer", "Observers"]

log = logging.getLogger("anywire")


@dataclass(frozen=True, slots=True)
class Connection:
    """Who is on a connection: what logs and metrics may say about it (never a token,
    ticket or session token)."""

    sid: str
    transport: str
    namespace: str
    user: str | None
    origin: str | None
    ip: str | None


class Observer:
    """A listener. Every method is a no-op here; override the ones you need."""

    def negotiated(self, outcome: str, transports: tuple[str, ...]) -> None:
        """A negotiate was answered. ``outcome``: ``ok``, ``auth``, ``flood``, ``busy``,
        ``bad_request``, ``origin``, ``no_transport`` or ``broker``; ``transports`` is
        the order offered (empty unless ``ok``)."""

    def fallback(self, from_transport: str, to_transport: str, reason: str) -> None:
        """A client moved off ``from_transport`` to ``to_transport`` (the one offered
        first now), for ``reason`` as the client reported it in negotiate's ``failures``
        (server/negotiate.py ``FAILURE_REASONS``, or ``other``)."""

    def connected(self, conn: Connection, resumed: bool) -> None:
        """A connection was attached to a session (fresh, or a resume)."""

    def disconnected(
        self, conn: Connection, code: int, duration: float, frames_in: int, frames_out: int
    ) -> None:
        """A connection ended (``code`` is the close code, 1000 for a clean end)."""

    def resumed(self, outcome: str) -> None:
        """A resume was asked for. ``outcome``: ``recovered``, ``not_recovered`` (the
        client was told ``recovered: false``) or ``unknown_session``."""

    def lost(self, stream: str, count: int | None) -> None:
        """A ``$lost`` range was sent (``count`` None when open-ended)."""

    def auth_failed(self, reason: str, where: str) -> None:
        """A credential was refused (``reason`` from the JWT check; never the token)."""

    def closed_for(self, reason: str, conn: Connection) -> None:
        """A connection was closed by the server for ``flood`` or ``slow_consumer``."""

    def flood_refused(self, conn: Connection) -> None:
        """Input of ``conn`` was refused for flood (429 on HTTP, and on a WebSocket a
        4008 close, which :meth:`closed_for` reports too); once per connection."""

    def ack_round_trip(self, seconds: float) -> None:
        """A server-to-client call was acknowledged after ``seconds``."""

    def ack_timeout(self) -> None:
        """A server-to-client call timed out."""

    def delivery_latency(self, seconds: float) -> None:
        """An event reached a connection's write ``seconds`` after it was published."""

    def broker_state(self, state: str) -> None:
        """The broker's connection state changed (``ok``, ``degraded``, ``down``)."""

    def undelivered(self, outcome: str, namespace: str, user: str, event: str) -> None:
        """An event to ``user`` found none of their devices connected (the
        ``on_undelivered`` hook, server/undelivered.py). ``outcome``: ``called`` (a hook
        ran and returned), ``failed`` (a hook raised; logged) or ``duplicate`` (another
        node won the event's election and calls the hooks: not called here)."""


class Observers(Observer):
    """All registered listeners, called in order; a failing listener is dropped."""

    def __init__(self) -> None:
        self._all: list[Observer] = []

    def add(self, observer: Observer) -> None:
        """Register a listener."""
        self._all.append(observer)

    def __bool__(self) -> bool:
        return bool(self._all)

    def _call(self, name: str, *args: object) -> None:
        for observer in list(self._all):
            try:
                getattr(observer, name)(*args)
            except Exception:
                log.exception("anywire: observer %r failed in %s; dropped", observer, name)
                self._all.remove(observer)

    def negotiated(self, outcome: str, transports: tuple[str, ...]) -> None:
        self._call("negotiated", outcome, transports)

    def fallback(self, from_transport: str, to_transport: str, reason: str) -> None:
        self._call("fallback", from_transport, to_transport, reason)

    def connected(self, conn: Connection, resumed: bool) -> None:
        self._call("connected", conn, resumed)

    def disconnected(
        self, conn: Connection, code: int, duration: float, frames_in: int, frames_out: int
    ) -> None:
        self._call("disconnected", conn, code, duration, frames_in, frames_out)

    def resumed(self, outcome: str) -> None:
        self._call("resumed", outcome)

    def lost(self, stream: str, count: int | None) -> None:
        self._call("lost", stream, count)

    def auth_failed(self, reason: str, where: str) -> None:
        self._call("auth_failed", reason, where)

    def closed_for(self, reason: str, conn: Connection) -> None:
        self._call("closed_for", reason, conn)

    def flood_refused(self, conn: Connection) -> None:
        self._call("flood_refused", conn)

    def ack_round_trip(self, seconds: float) -> None:
        self._call("ack_round_trip", seconds)

    def ack_timeout(self) -> None:
        self._call("ack_timeout")

    def delivery_latency(self, seconds: float) -> None:
        self._call("delivery_latency", seconds)

    def broker_state(self, state: str) -> None:
        self._call("broker_state", state)

    def undelivered(self, outcome: str, namespace: str, user: str, event: str) -> None:
        self._call("undelivered", outcome, namespace, user, event)
