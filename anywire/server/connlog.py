"""Connection logs: one log line per event an operator asks about, on logger ``anywire.conn``.

Every :class:`~anywire.server.app.Anywire` registers a :class:`ConnLog`. Its lines go
wherever stdlib logging sends them (``anywire serve`` prints them on stderr; under your
own uvicorn configure logging, e.g. :func:`anywire.server.logs.configure`). Each line is
``EVENT key=value ...``; the same fields are the record's ``extra=`` attributes, so the
JSON format (:class:`~anywire.server.logs.JsonFormatter`) writes them as keys.

=============  =======  ==========================================================
event          level    fields
=============  =======  ==========================================================
connect        INFO     sid, transport, namespace, user, origin, ip, resumed
disconnect     INFO     the same but resumed, and code, duration (s), frames_in,
                        frames_out
resume         INFO     outcome (recovered, not_recovered, unknown_session)
fallback       INFO     from, to, reason
lost           INFO     stream, count (null: open-ended)
negotiate      DEBUG    outcome ok (and auth: the auth_failed line says why)
negotiate      WARNING  outcome flood, busy, bad_request, origin, no_transport,
                        broker; transports. ``flood`` and ``busy`` (the
                        refusals of a reconnect storm: thousands a second)
                        are one line a second each at most, with ``more``:
                        how many were left out since the last one
auth_failed    WARNING  reason (expired, signature, audience, ...), where
flood          WARNING  the connection's fields: its input was refused for flood
                        (429 on HTTP; once per connection)
closed         WARNING  reason (flood, slow_consumer) and the connection's fields
ack_timeout    DEBUG    (none)
broker         WARNING  state (INFO when ``ok`` again)
undelivered    INFO     outcome called, namespace, user, event_name (the
                        on_undelivered hook ran for an event none of the user's
                        devices was connected for)
undelivered    WARNING  outcome failed (the hook raised; its traceback is on logger
                        ``anywire``)
undelivered    DEBUG    outcome duplicate (another node calls the hook for it)
=============  =======  ==========================================================

``ConnLog(level=..., alert_level=...)`` moves the INFO and WARNING rows; the logger's
level (``logging.getLogger("anywire.conn").setLevel("WARNING")``, or ``anywire serve
--conn-log-level warning``) keeps only the rows at or above it. No line holds a token,
a ticket or a session token: a :class:`~anywire.server.observe.Connection` has none.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable

from .observe import Connection, Observer

__all__ = ["LOGGER", "ConnLog"]

LOGGER = "anywire.conn"

_PLAIN = re.compile(r"[\w.:/@+\-,]+")

_STORMY = frozenset({"flood", "busy"})  # negotiate outcomes logged once a second at most


class ConnLog(Observer):
    """The connection log listener (see the module docstring for its lines).

    :param level: level of routine events (connect, disconnect, resume, fallback, lost).
    :param alert_level: level of refusals, auth failures and server-side closes.
    :param logger: the logger (or its name) to write to.
    """

    def __init__(
        self,
        level: int = logging.INFO,
        alert_level: int = logging.WARNING,
        logger: str | logging.Logger = LOGGER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.level = level
        self.alert_level = alert_level
        self.log = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
        # A reconnect storm is refused thousands of times a second: a line per refusal
        # would cost the node the CPU it sheds load to save, and bury everything else.
        self._clock = clock
        self._last: dict[str, float] = {}  # outcome -> when its last line was written
        self._left_out: dict[str, int] = {}  # outcome -> lines left out since

    def _line(self, level: int, event: str, **fields: object) -> None:
        if self.log.isEnabledFor(level):
            self.log.log(level, "%s %s", event, _logfmt(fields), extra={"event": event, **fields})

    def negotiated(self, outcome: str, transports: tuple[str, ...]) -> None:
        level = logging.DEBUG if outcome in ("ok", "auth") else self.alert_level
        if outcome in _STORMY:
            if not self.log.isEnabledFor(level):
                return
            now = self._clock()
            if now - self._last.get(outcome, -1e18) < 1.0:
                self._left_out[outcome] = self._left_out.get(outcome, 0) + 1
                return
            self._last[outcome] = now
            more = self._left_out.pop(outcome, 0)
            transports_ = ",".join(transports)
            self._line(level, "negotiate", outcome=outcome, transports=transports_, more=more)
            return
        self._line(level, "negotiate", outcome=outcome, transports=",".join(transports))

    def fallback(self, from_transport: str, to_transport: str, reason: str) -> None:
        moved = {"from": from_transport, "to": to_transport}
        self._line(self.level, "fallback", **moved, reason=reason)

    def connected(self, conn: Connection, resumed: bool) -> None:
        self._line(self.level, "connect", **_conn(conn), resumed=resumed)

    def disconnected(
        self, conn: Connection, code: int, duration: float, frames_in: int, frames_out: int
    ) -> None:
        self._line(
            self.level,
            "disconnect",
            **_conn(conn),
            code=code,
            duration=round(duration, 3),
            frames_in=frames_in,
            frames_out=frames_out,
        )

    def resumed(self, outcome: str) -> None:
        self._line(self.level, "resume", outcome=outcome)

    def lost(self, stream: str, count: int | None) -> None:
        self._line(self.level, "lost", stream=stream, count=count)

    def auth_failed(self, reason: str, where: str) -> None:
        self._line(self.alert_level, "auth_failed", reason=reason, where=where)

    def closed_for(self, reason: str, conn: Connection) -> None:
        self._line(self.alert_level, "closed", reason=reason, **_conn(conn))

    def flood_refused(self, conn: Connection) -> None:
        self._line(self.alert_level, "flood", **_conn(conn))

    def ack_timeout(self) -> None:
        self._line(logging.DEBUG, "ack_timeout")

    def broker_state(self, state: str) -> None:
        self._line(self.level if state == "ok" else self.alert_level, "broker", state=state)

    def undelivered(self, outcome: str, namespace: str, user: str, event: str) -> None:
        level = {"called": self.level, "failed": self.alert_level}.get(outcome, logging.DEBUG)
        # ``event`` is the line's own ("undelivered"); ``name`` a LogRecord attribute.
        fields = {"namespace": namespace, "user": user, "event_name": event}
        self._line(level, "undelivered", outcome=outcome, **fields)


def _conn(conn: Connection) -> dict[str, object]:
    return {
        "sid": conn.sid,
        "transport": conn.transport,
        "namespace": conn.namespace,
        "user": conn.user,
        "origin": conn.origin,
        "ip": conn.ip,
    }


def _logfmt(fields: dict[str, object]) -> str:
    """``key=value`` pairs; a value other than a plain word is JSON-quoted, so a line
    stays one line whatever a client put in its Origin or its user id."""
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items())


def _value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)
