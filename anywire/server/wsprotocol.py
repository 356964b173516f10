"""uvicorn's sans-I/O WebSocket protocol with pings and pongs charged to the flood budget.

uvicorn answers WebSocket pings itself, below ASGI: without this a client could make the
server parse and answer pings for free (issue #13: 57% of a core, before any message).
:func:`metered_protocol` builds the protocol class ``anywire serve`` runs: each ping or
pong is charged to a :class:`~anywire.transports.meter.ControlMeter`, the connection's
own bucket until its first message attached a session, the session's budget after that.
Past the budget the connection is closed with 4008 FLOOD (its session is kept) and
nothing it sends afterwards is parsed.

It also holds less per connection (issue #17): the received-message queue and the
writable flag are :mod:`.wsstate`'s small stand-ins for uvicorn's asyncio queue and
event, and the handshake's request and response are let go once the handshake is done.

Its transport reads and writes data messages without ASGI where it can: the direct write
(:meth:`_MeteredProtocol.write_now`, :mod:`.wsframes`) and the direct read
(:mod:`.wsreading`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame
from websockets.protocol import State

from ..core.closecodes import CloseCode
from ..core.settings import Settings
from ..transports.direct import DIRECT_KEY
from ..transports.meter import METER_KEY, ControlMeter
from .wsframes import HEADERS, HEADERS_BELOW, server_frame
from .wsreading import DirectReadProtocol
from .wsstate import Gate, Inbox

__all__ = ["metered_protocol"]

_DEFAULTS = Settings()
_HANGUP = 1.0  # seconds between a flood close and hanging up (see _stop_reading)
_SEND = WebSocketsSansIOProtocol.send
_OPEN = State.OPEN


class _MeteredProtocol(DirectReadProtocol):
    """Pings and pongs cost flood tokens; see the module docstring."""

    rate: float = _DEFAULTS.flood_rate
    burst: float = _DEFAULTS.flood_burst
    # Class-level defaults, set on the instance only when they change: each attribute
    # in the instance's dict costs every connection.
    refused = False  # the flood was handled (once)
    hangup: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter = ControlMeter(self.rate, self.burst, self.loop.time())
        # The same API as the asyncio.Queue and asyncio.Event uvicorn made, without
        # their up-front deques (~3 KB a connection).
        self.queue = Inbox(self.loop)  # type: ignore[assignment]
        self.writable = Gate(self.loop)  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the handshake was accepted: the app will see the meter
            scope["extensions"][METER_KEY] = self.meter
            scope["extensions"][DIRECT_KEY] = self.write_now
            self.offer_direct_read()

    def data_received(self, data: bytes) -> None:
        if self.meter.flooded:
            self._stop_reading()  # parse nothing more
            return
        DirectReadProtocol.data_received(self, data)  # (not super(): cheaper, every read)

    def _stop_reading(self) -> None:
        """Read nothing more (what the client still sends waits in the kernel, at no
        cost to us), and hang up a moment after our close frame left: closing at once,
        with unread data, resets the connection and the client may lose the close."""
        if not self.stopped:
            self.stopped = True
            self.transport.pause_reading()
        if self.close_sent and self.hangup is None:
            self.hangup = self.loop.call_later(_HANGUP, self.transport.close)

    def write_now(self, data: bytes, binary: bool) -> bool:
        """:data:`anywire.transports.direct.DirectWrite`: what uvicorn's ``send()`` does
        for a data message, without the coroutine, the message dict and the text's
        decoding and re-encoding; False (nothing done) unless the connection is open
        and its socket writable, where ``send()`` would not have waited.

        The frame is built here (:func:`.wsframes.server_frame`) when ``websockets``
        would add nothing to it: the connection OPEN (so the handshake's 101 went out,
        no close was sent or answered, no HTTP response instead), no extension, no
        fragmented message, nothing of its own waiting to be written before. A data
        frame changes no state of the ``websockets`` protocol (``send_text`` only
        checks, frames and queues the bytes), so its close handshake is unaffected.
        Anything else takes ``websockets``' own path below."""
        conn = self.conn
        if (
            conn._state is _OPEN
            and not self.disconnected
            and self.writable._open  # type: ignore[attr-defined]
            and not conn.extensions
            and not conn.writes
            and not conn.expect_continuation_frame
        ):
            length = len(data)  # (server_frame() inlined for the usual message)
            if length < HEADERS_BELOW:
                self.transport.write(HEADERS[binary][length] + data)
            else:
                self.transport.write(server_frame(data, binary))
            return True
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
        ):
            return False
        try:
            if binary:
                conn.send_binary(data)
            else:
                conn.send_text(data)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(conn.data_to_send()))
        return True

    def send(self, message: Any) -> Coroutine[Any, Any, None]:
        """uvicorn's ``send`` for a data message, itself, not awaited in a coroutine of
        ours (one coroutine less per write: docs/perf/cpu.md); the handshake and close
        bookkeeping below for the others."""
        if message["type"] == "websocket.send":
            return _SEND(self, message)
        return self._send_other(message)

    async def _send_other(self, message: Any) -> None:
        await _SEND(self, message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self._forget_handshake()
        if message["type"] == "websocket.close" and message.get("code") == CloseCode.FLOOD:
            # The app closed for flood (messages): whatever the client goes on sending
            # is not parsed either (uvicorn would, until the close handshake ends).
            self.meter.flooded = True
            self._stop_reading()

    def _forget_handshake(self) -> None:
        """uvicorn reads the handshake's request and response only until the accept went
        out (the app has the headers in its scope), yet they would stay for the
        connection's life: ~3 KB of header strings. The request is also held by the
        websockets parser's generator frame, which we cannot reach: emptying its headers
        frees them there too."""
        request = getattr(self, "request", None)
        if request is not None:
            request.headers.clear()
        self.request = self.response = None  # type: ignore[assignment]

    def handle_ping(self) -> None:
        if self._charged():
            super().handle_ping()

    def handle_pong(self, event: Frame) -> None:
        if self._charged():
            super().handle_pong(event)

    def _charged(self) -> bool:
        if self.meter.take(self.loop.time()):
            return True
        if self.refused:
            return False  # the rest of a chunk read before the refusal
        self.refused = True
        if self.meter.on_flood is not None:
            self.meter.on_flood()  # the transport closes with 4008; the session is kept
        elif not self.close_sent:
            # No session yet: nothing to keep, close here.
            self.conn.send_close(CloseCode.FLOOD, "flood: too many pings")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self._stop_reading()
        return False


def metered_protocol(settings: Settings) -> type[WebSocketsSansIOProtocol]:
    """The protocol class for uvicorn's ``ws`` setting, with ``settings``' flood budget
    for connections that have no session yet."""
    return type(
        "MeteredWebSocketProtocol",
        (_MeteredProtocol,),
        {"rate": settings.flood_rate, "burst": float(settings.flood_burst)},
    )
