"""Log output: the text and JSON formats, and the filter that keeps secrets out of logs.

``anywire serve --log-format json`` and :func:`configure` (``configure(fmt="json")`` from
Python) print one JSON object per line: ``time``, ``level``, ``logger``, ``message``,
then every ``extra=`` field of the record, so a connection log line
(:mod:`anywire.server.connlog`) carries its fields as keys, and its text form is made
from the same record.

:class:`ScrubSecrets` (:mod:`anywire.core.redact`) is the :class:`logging.Filter` that
masks credentials: uvicorn's access log (``uvicorn.access``) and WebSocket handshake
lines (``uvicorn.error``) print the query string, where SSE and long-polling carry a
connection ticket (``?ticket=``) and a follow-up request may carry a session token
(``?token=``); at debug level uvicorn prints WebSocket frames, whose ``connect`` and
``auth`` frames carry a ticket or a JWT. Every ``Anywire()`` installs it on uvicorn's
loggers (:func:`scrub_uvicorn`); a ``--log-config`` file may name it too (see
docs/operations.md, "Logs").
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from ..core.redact import ScrubSecrets, scrub, scrub_loggers

__all__ = [
    "FORMATS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "ScrubSecrets",
    "configure",
    "formatter",
    "scrub",
    "scrub_uvicorn",
    "uvicorn_log_config",
]

TEXT_FORMAT = "%(levelname)s %(name)s %(message)s"
"""The text format of ``anywire serve`` (a journal or a container runtime adds the time)."""

FORMATS = ("text", "json")

UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")
"""uvicorn's loggers that print query strings, scopes or WebSocket frames."""

# LogRecord attributes that are not ``extra=`` fields (JsonFormatter writes the others).
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
    "taskName",
}


def scrub_uvicorn(*names: str) -> None:
    """Add :class:`ScrubSecrets` to uvicorn's loggers (or to the loggers ``names``),
    once each. A logger filter outlives uvicorn's own logging setup, so this may run
    before or after it (``Anywire()`` runs it)."""
    scrub_loggers(*(names or UVICORN_LOGGERS))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, every ``extra=`` field of the record, then ``exc_info``/``stack_info``
    as text when present. Values JSON cannot hold are written as ``str(value)``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in out and not key.startswith("_"):
                out[key] = value
        out["message"] = record.getMessage()
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines (and, ASCII only, U+2028): one record, one line.
        return json.dumps(out, default=str)


def _iso_time(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``fmt`` (``text`` or ``json``)."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (so a second call replaces it)."""


def configure(
    fmt: str = "text",
    level: int | str = "INFO",
    *,
    stream: IO[str] | None = None,
    conn_level: int | str | None = None,
) -> logging.Handler:
    """Send every log record (anywire's, uvicorn's when it propagates, yours) to
    ``stream`` (stderr by default) in format ``fmt`` (``text`` or ``json``), at ``level``
    and above, with uvicorn's loggers scrubbed (:func:`scrub_uvicorn`).

    ``conn_level`` sets the level of the connection log (logger ``anywire.conn``): e.g.
    ``"WARNING"`` keeps refusals and flood closes but drops connects and disconnects.
    Calling again replaces the handler installed before. Returns the handler.
    """
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(level))
    if conn_level is not None:
        logging.getLogger("anywire.conn").setLevel(_level(conn_level))
    scrub_uvicorn()
    return handler


TRACE = 5
"""uvicorn's level below DEBUG (ASGI messages); named here before uvicorn names it."""


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    if level.upper() == "TRACE":
        logging.addLevelName(TRACE, "TRACE")
        return TRACE
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


def uvicorn_log_config(fmt: str) -> dict[str, Any]:
    """The ``log_config`` to give ``uvicorn.Config`` for format ``fmt``: uvicorn's own
    for ``text``; for ``json`` uvicorn's loggers lose their handlers and propagate to
    the root handler :func:`configure` installed, so every line is JSON."""
    if fmt == "text":
        from uvicorn.config import LOGGING_CONFIG

        return LOGGING_CONFIG
    formatter(fmt)  # ValueError for an unknown format
    routed = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: dict(routed) for name in ("uvicorn", *UVICORN_LOGGERS)},
    }
