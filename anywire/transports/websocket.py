"""WebSocket transport: ``GET /anywire/ws`` (raw ASGI).

A reader (in the connection's own task) and a writer task per connection. The reader
must run for the whole
connection (uvicorn's sans-I/O WebSocket stops reading, pongs included, until ``receive()``
is called again). The writer drains the session's frames whenever it is woken and
coalesces everything pending into one message (a batch) to cut per-message overhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError, RemoteProtocolError
from ..core.frames import Connect, ErrorFrame, Resume
from .base import (
    Host,
    Link,
    Receive,
    Scope,
    Send,
    TransportInfo,
    byte_length,
    decode_frames,
    short_reason,
)

__all__ = ["INFO", "WebSocketTransport"]

log = logging.getLogger("anywire")

INFO = TransportInfo("websocket", bidirectional=True, server_ping=True, binary=True)


class WebSocketTransport:
    """ASGI app for one WebSocket endpoint."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if not self.host.check_origin(scope):
            # Rejecting before accept makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": CloseCode.FORBIDDEN})
            return
        if "websocket" not in self.host.settings.transports:
            await send({"type": "websocket.close", "code": CloseCode.TRANSPORT_DISABLED})
            return
        await send({"type": "websocket.accept"})
        link = await self._handshake(receive, send)
        if link is None:
            return
        # The reader runs in this task and only the writer gets its own: one task less
        # per connection (memory per idle connection). When the writer ends first, it
        # cancels the read so the connection winds down as one.
        writer = asyncio.create_task(self._writer(link, send))
        task = asyncio.current_task()
        reading = True

        def writer_done(_: asyncio.Task[None]) -> None:
            if reading and task is not None:
                task.cancel()

        writer.add_done_callback(writer_done)
        failure: BaseException | None = None
        try:
            try:
                await self._reader(link, receive, send)
            except asyncio.CancelledError:
                if not writer.done() or task is None:
                    raise  # cancelled from outside (server shutdown)
                task.uncancel()
            except Exception as exc:
                failure = exc
            reading = False
            if failure is None and writer.done() and not writer.cancelled():
                failure = writer.exception()
            if failure is not None:
                # A bug of ours, not the client's: say so with a reconnect-range code.
                log.error("websocket task failed", exc_info=failure)
                await _close(send, CloseCode.INTERNAL_ERROR, "internal error")
            elif link.closing is not None:
                # The reader asked for a close: let the writer send it (bounded).
                await asyncio.wait((writer,), timeout=1.0)
        finally:
            reading = False
            self.host.detach(link)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _handshake(self, receive: Receive, send: Send) -> Link | None:
        settings = self.host.settings
        try:
            async with asyncio.timeout(settings.connect_timeout):
                message = await receive()
        except TimeoutError:
            await _close(send, CloseCode.BAD_REQUEST, "no connect frame")
            return None
        if message["type"] != "websocket.receive":
            return None
        data = message.get("text") if message.get("text") is not None else message.get("bytes")
        try:
            if data is None or byte_length(data) > settings.max_frame_size:
                raise RemoteProtocolError("first frame missing or too large", 4503)
            # The first message's kind picks the codec for the connection: text is JSON,
            # binary is MessagePack (clients use the codec negotiate offered).
            codec = self.host.codec("json" if isinstance(data, str) else "msgpack")
            frames, error = decode_frames(codec, data, 1)
            if error is not None:
                raise error
            if not frames:
                raise RemoteProtocolError("the first message must hold a connect frame")
            first = frames[0]
            if not isinstance(first, Connect | Resume):
                raise RemoteProtocolError("the first frame must be connect or resume")
            link = Link(INFO, codec)
            await self.host.attach(link, first)
        except ProtocolError as exc:
            await _close(send, exc.code, exc.message)
            return None
        return link

    async def _reader(self, link: Link, receive: Receive, send: Send) -> None:
        settings = self.host.settings
        assert link.sid is not None
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            if data is None:
                continue
            if byte_length(data) > settings.max_frame_size:
                link.close(CloseCode.MESSAGE_TOO_BIG, f"frame over {settings.max_frame_size} bytes")
                return
            frames, error = decode_frames(link.codec, data, settings.max_batch)
            try:
                if frames:
                    self.host.feed(link.sid, frames)
                if error is not None:
                    self.host.reject(link.sid, error)
                    raise error
            except RemoteProtocolError as exc:
                if exc.code == CloseCode.FLOOD:
                    link.close(exc.code, exc.message)
                    return
                # A bad frame is answered, not fatal: the connection and session live on.
                link.push(link.codec.encode(ErrorFrame(exc.code, exc.message).to_wire()))

    async def _writer(self, link: Link, send: Send) -> None:
        try:
            limit = self.host.settings.max_batch
            while True:
                frames = self.host.outgoing(link, limit)
                if frames:
                    body = frames[0] if len(frames) == 1 else link.codec.batch(frames)
                    await _send(send, link, body)
                if link.closing is not None:
                    code, reason = link.closing
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                if self.host.has_pending(link):
                    # More than one batch was waiting: yield between batches so a
                    # backlog cannot starve the loop.
                    await asyncio.sleep(0)
                else:
                    # Woken by the first push; the task runs only after the pusher yields,
                    # so everything pushed in that step goes out as one message.
                    await link.wait()
        except (OSError, RuntimeError):
            return  # the socket is gone; the reader sees the disconnect


async def _send(send: Send, link: Link, data: bytes) -> None:
    if link.codec.binary:
        await send({"type": "websocket.send", "bytes": data})
    else:
        await send({"type": "websocket.send", "text": data.decode("utf-8")})


async def _close(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": code, "reason": short_reason(reason)})
