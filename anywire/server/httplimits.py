"""HTTP limits of the server ``anywire serve`` runs: request-line and header sizes, the
time to receive headers and body, and the keep-alive idle time.

uvicorn's httptools protocol bounds none of them: httptools keeps an unfinished header
value in memory however long it grows (20 connections each sending a 20 MB header they
never finish added 450 MB), and a request dribbled one byte at a time never times out
(the keep-alive timer only runs between requests). :class:`LimitedHttpTools` is that
protocol with the limits added where the bytes come in, before the parser sees them:

* at most ``max_header_size`` bytes (request line included) are fed to the parser before
  the headers are complete; past that the request gets 431 (or 414 when the request line
  alone is over ``max_request_line``) and the connection is closed;
* the headers must be complete within ``header_timeout`` seconds of the request's first
  byte (or of the connection's opening), the body within ``body_timeout`` seconds of the
  headers; past either the request gets 408 (a response already under way is cut
  instead) and the connection is closed;
* a connection idle between requests is closed after ``keep_alive`` seconds (uvicorn's
  own timer).

Every refusal is a JSON error body like the application's (``{"error", "code",
"message"}``, docs/protocol.md section 3.4) with ``Connection: close``, and logs one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..core.closecodes import CloseCode
from .stale import stale

__all__ = ["HttpLimits", "LimitedHttpTools", "protocol_class"]

log = logging.getLogger("anywire")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The limits of :class:`LimitedHttpTools` (``anywire serve`` options of the same
    names; docs/protocol.md section 8.7)."""

    max_request_line: int = 8192
    """Longest request line (method, target, version) in bytes: 414 past it."""
    max_header_size: int = 32768
    """Most bytes of request line and headers together: 431 past it."""
    header_timeout: float = 10.0
    """Seconds to receive a complete request head, from its first byte (or from the
    connection's opening): 408 past it."""
    body_timeout: float = 30.0
    """Seconds to receive the whole body once the head is complete: 408 past it."""
    keep_alive: float = 5.0
    """Seconds a connection may stay idle between requests."""


# The error names and close codes of the refusals (the JSON error shape of section 3.4):
# a head too big will be too big again (terminal, 4503); a request too slow may well
# pass on a better network (4001: the client was silent too long, reconnect).
_REFUSALS = {
    408: ("timeout", CloseCode.PING_TIMEOUT),
    414: ("too_large", CloseCode.MESSAGE_TOO_BIG),
    431: ("too_large", CloseCode.MESSAGE_TOO_BIG),
    400: ("bad_request", CloseCode.BAD_REQUEST),
}


def refusal(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 response: ``status``, a JSON error body, ``Connection: close``."""
    name, code = _REFUSALS[status]
    body = json.dumps({"error": name, "code": int(code), "message": message}).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"cache-control: no-store\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HttpLimits` enforced."""

    limits = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # no request head completed since the last request ended
        self._head_bytes = 0  # bytes fed to the parser in the current head
        self._line_bytes = 0  # bytes of the request target seen in the current head
        self._too_long = False  # the request target went past max_request_line
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._first = True  # nothing received yet on this connection

    # -- connection -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never completes a head (or sends nothing) is closed too.
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._first:
            self._first = False
            # A negotiate or upgrade nobody waits for (stale.py): answered 503 unparsed,
            # or closed unanswered when its client has gone.
            shed = stale(data, self.transport)
            if shed is not None:
                self._cancel_timers()
                if shed:
                    self.transport.write(shed)
                self.transport.close()
                return
        if not self._in_head:
            super().data_received(data)
            return
        room = self.limits.max_header_size - self._head_bytes
        head, rest = data[:room], data[room:]
        self._head_bytes += len(head)
        super().data_received(head)
        if self._in_head and self._head_bytes >= self.limits.max_header_size:
            self._refuse(431, f"request head over {self.limits.max_header_size} bytes")
        elif rest and not self.transport.is_closing() and self.transport.get_protocol() is self:
            # The head ended within the limit: the rest is body (or the next request).
            self.data_received(rest)

    # -- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._line_bytes = 0
        if self._head_timer is None:  # the first byte of a request (not the connection's)
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def on_url(self, url: bytes) -> None:
        # The target arrives in pieces. Raising stops the parser (uvicorn then calls
        # send_400_response, which answers 414 instead).
        self._line_bytes += len(url)
        if self._line_bytes > self.limits.max_request_line:
            self._too_long = True
            raise ValueError("request line too long")
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._in_head = True  # whatever comes next is the head of the next request

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own is plain text; every error of anywire is JSON.
        if self._too_long:
            self._refuse(414, f"request line over {self.limits.max_request_line} bytes")
        else:  # uvicorn has logged it (one line)
            self._refuse(400, msg, logged=True)

    # -- refusals -------------------------------------------------------------------------
    def _head_late(self) -> None:
        self._head_timer = None
        if self._head_bytes == 0 and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()  # nothing asked, nothing to answer: an idle connection
            return
        self._refuse(408, f"request head not received within {self.limits.header_timeout} s")

    def _body_late(self) -> None:
        self._body_timer = None
        # The body's own request may have been answered already (without reading it):
        # then there is nothing to answer, only a connection to close.
        answer = self.cycle is not None and not self.cycle.response_started
        message = f"request body not received within {self.limits.body_timeout} s"
        self._refuse(408, message, answer=answer)

    def _refuse(
        self, status: int, message: str, logged: bool = False, answer: bool | None = None
    ) -> None:
        """Answer ``status`` (by default unless a response is under way: that one is cut)
        and close the connection."""
        if self.transport.is_closing():
            return
        if not logged:
            log.info("anywire: HTTP %d (%s) to %s", status, message, _peer(self.client))
        self._cancel_timers()
        cycle = self.cycle
        if answer is None:
            answer = cycle is None or cycle.response_complete or not cycle.response_started
        if answer:
            self.transport.write(refusal(status, message))
        if cycle is not None and not cycle.response_complete:
            # The application's receive() returns http.disconnect; what it sends later
            # is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


def protocol_class(limits: HttpLimits) -> type[LimitedHttpTools]:
    """:class:`LimitedHttpTools` bound to ``limits`` (uvicorn builds one per connection)."""
    return type("LimitedHttpTools", (LimitedHttpTools,), {"limits": limits})
