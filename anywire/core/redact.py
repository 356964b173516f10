"""Credentials out of log lines: the masking shared by the server's and the client's logs.

:class:`ScrubSecrets` is a :class:`logging.Filter` for the loggers of libraries that print
URLs, headers or WebSocket frames: uvicorn's access log and WebSocket handshake lines
(SSE and long-poll URLs carry a connection ticket, ``?ticket=``; a follow-up request may
carry a session token, ``?token=``), websockets' debug output (a ``connect`` frame holds
a ticket, an ``auth`` frame a JWT) and httpx's request lines on the client. The server
installs it on uvicorn's loggers (:mod:`anywire.server.logs`), the Python client on
httpx's and websockets'.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SECRET_HEADERS", "ScrubSecrets", "scrub", "scrub_loggers"]

# A query parameter or JSON field whose name says it holds a credential. Broad on
# purpose: masking a harmless parameter in an access log costs nothing, printing a
# credential cannot be undone. anywire's own are ``ticket`` and ``token``.
_SECRET_NAME = r"[\w.\-]*(?:ticket|token|secret|passw|jwt|auth|key|session|sig)[\w.\-]*"
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&#\s\"']*")
_JSON_SECRET = re.compile(rf"(?i)(\"{_SECRET_NAME}\"\s*:\s*\")(?:[^\"\\]|\\.)*\"?")
_MASK = "***"
_PLAIN = (int, float, type(None))  # arguments never worth a look

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-anywire-token", "x-api-key"}
)
"""Headers whose value is a credential: a logged (name, value) pair loses the value."""


def scrub(text: str) -> str:
    """``text`` with the values of credential-named query parameters (``?ticket=T``)
    and JSON fields (``"token": "T"``) replaced by ``***``."""
    if "=" not in text and '"' not in text:
        return text  # the common case: nothing to look for
    text = _QUERY_SECRET.sub(rf"\g<1>{_MASK}", text)
    return _JSON_SECRET.sub(rf'\g<1>{_MASK}"', text)


class ScrubSecrets(logging.Filter):
    """Mask credentials in the records of the logger it is added to (never drops one).

    Rewrites the message and its arguments: query strings and JSON in text (and in any
    object whose ``str`` holds one, such as an ``httpx.URL``), the value of a credential
    header logged as a (name, value) pair (websockets' debug output), the
    ``query_string`` of an ASGI scope (uvicorn's trace output), and WebSocket data
    frames (websockets' debug output) to their type and length.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            args = [_scrub_value(arg) for arg in record.args]
            for i, arg in enumerate(args[:-1]):  # websockets' debug "< %s: %s" header
                if isinstance(arg, str) and arg.lower() in SECRET_HEADERS:
                    args[i + 1] = _MASK
            record.args = tuple(args)
        elif isinstance(record.args, Mapping):
            # A lone mapping argument becomes the args themselves (uvicorn's ASGI scope).
            scrubbed = {key: _scrub_value(arg) for key, arg in record.args.items()}
            record.args = _scrub_value(scrubbed)
        return True


def _scrub_value(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, bytes):
        return scrub(value.decode("latin-1")).encode("latin-1")
    if isinstance(value, Mapping):
        if isinstance(value.get("query_string"), bytes):  # an ASGI scope: no "?" in front
            query = scrub("?" + value["query_string"].decode("latin-1"))[1:]
            return {**value, "query_string": query.encode("latin-1")}
        return value
    if type(value).__name__ == "Frame" and hasattr(value, "opcode"):  # websockets.frames
        return _frame_summary(value)
    text = str(value)  # an httpx.URL, say: replaced only if it holds a credential
    masked = scrub(text)
    return value if masked == text else masked


def _frame_summary(frame: Any) -> Any:
    """A data frame as ``TEXT [123 bytes]``; control frames (ping, pong, close: no
    credential in them, and their content helps) as they are."""
    name = getattr(frame.opcode, "name", str(frame.opcode))
    if name in ("TEXT", "BINARY", "CONT"):
        return f"{name} [{len(frame.data)} bytes]"
    return frame


def scrub_loggers(*names: str) -> None:
    """Add :class:`ScrubSecrets` to the loggers ``names``, once each. A logger's
    filters outlive a later ``logging.config.dictConfig``, so this may run before or
    after a server sets up its logging."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubSecrets) for f in logger.filters):
            logger.addFilter(ScrubSecrets())
