"""WebSocket transport: ``GET /anywire/ws`` (raw ASGI).

The reader runs in the connection's own task for the whole connection (uvicorn's sans-I/O
WebSocket stops reading, pongs included, until ``receive()`` is called again). Writing is
done by one :class:`_Flusher` per transport: a connection with output waiting is put on
its list, and one callback per loop iteration writes every listed connection, back to
back, each with everything pending coalesced into one message (a batch):

* the reader feeds a message in and lists the connection for the next iteration (an
  echo's answer costs no task and no task switch);
* a push from elsewhere (a broadcast, a timer) lists it one iteration later still, so the
  next events of a busy room join the same message.

The flusher drives uvicorn's ``send()`` coroutine itself: it completes at once unless the
socket is paused (the peer does not read); then a task per connection finishes that send
and the flushes after it, so a slow peer never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

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
        self.flusher = _Flusher()

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
        task = asyncio.current_task()
        assert task is not None
        writer = _Writer(self.host, link, send, task, self.flusher)
        link.on_wake = writer.wake
        failure: BaseException | None = None
        try:
            try:
                await writer.flush_inline()  # the hello and any replay
                await self._reader(link, receive, writer)
            except asyncio.CancelledError:
                if not writer.stopped_reader:
                    raise  # cancelled from outside (server shutdown)
                task.uncancel()
            except (OSError, RuntimeError):
                pass  # the socket is gone under an inline flush
            except Exception as exc:
                failure = exc
            writer.reading = False  # from here on, nothing may cancel this task
            failure = failure or writer.failure
            if failure is not None:
                # A bug of ours, not the client's: say so with a reconnect-range code.
                log.error("websocket task failed", exc_info=failure)
                await _close(send, CloseCode.INTERNAL_ERROR, "internal error")
            elif link.closing is not None and not writer.closed:
                # The reader asked for a close: send it (bounded).
                with contextlib.suppress(TimeoutError, OSError, RuntimeError):
                    async with asyncio.timeout(1.0):
                        await writer.finish()
        finally:
            writer.reading = False
            link.on_wake = None
            self.host.detach(link)
            await writer.cancel()

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

    async def _reader(self, link: Link, receive: Receive, writer: _Writer) -> None:
        host, sid, codec = self.host, link.sid, link.codec
        assert sid is not None
        max_size, max_batch = host.settings.max_frame_size, host.settings.max_batch
        while not writer.closed:
            message = await receive()
            data = message.get("text")
            if data is None:
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    continue
            # (A UTF-8 character is at most 4 bytes: short text needs no measuring.)
            if len(data) * 4 > max_size and byte_length(data) > max_size:
                link.close(CloseCode.MESSAGE_TOO_BIG, f"frame over {max_size} bytes")
                return
            frames, error = decode_frames(codec, data, max_batch)
            writer.holding = True  # pushes while feeding: listed once, below
            try:
                if frames:
                    host.feed(sid, frames)
                if error is not None:
                    host.reject(sid, error)
                    raise error
            except RemoteProtocolError as exc:
                if exc.code == CloseCode.FLOOD:
                    writer.release()
                    link.close(exc.code, exc.message)
                    return
                # A bad frame is answered, not fatal: the connection and session live on.
                link.push(link.codec.encode(ErrorFrame(exc.code, exc.message).to_wire()))
            except BaseException:
                writer.release()
                raise
            # The answers go out in the next loop iteration, together with those of every
            # other connection fed in this one: written as each message was handled,
            # nearly every write found its peer asleep and paid to wake it (on the echo
            # bench ~10% of the server's CPU, in the kernel); back to back, one wake-up
            # serves a burst.
            writer.release(soon=True)


class _Flusher:
    """Writes every listed connection from one callback per loop iteration.

    ``soon`` is flushed in the next iteration (answers to what a reader fed in), ``later``
    one iteration after (pushes from elsewhere: the next events of a busy room have an
    iteration to join the same message).
    """

    __slots__ = ("later", "scheduled", "soon")

    def __init__(self) -> None:
        self.soon: list[_Writer] = []
        self.later: list[_Writer] = []
        self.scheduled = False

    def add(self, writer: _Writer, soon: bool) -> None:
        (self.soon if soon else self.later).append(writer)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        due, self.soon, self.later = self.soon, self.later, []
        self.scheduled = bool(self.soon)
        if self.scheduled:
            asyncio.get_running_loop().call_soon(self._run)
        for writer in due:
            writer.flush_now()


class _Writer:
    """The write side of one connection: at most one flush runs at a time.

    A flush is owned by the reader while it feeds (``holding``) or writes the hello and
    the close itself, by the flusher while the connection is listed (``queued``), or by
    a writer task after a send had to wait (``task``). A wake-up lists the connection only
    when none of them owns it: whoever does looks for pending output before letting go.
    """

    __slots__ = (
        "closed",
        "ended",
        "failure",
        "flusher",
        "holding",
        "host",
        "link",
        "queued",
        "reader",
        "reading",
        "send",
        "stopped_reader",
        "task",
    )

    def __init__(
        self, host: Host, link: Link, send: Send, reader: asyncio.Task[None], flusher: _Flusher
    ) -> None:
        self.host = host
        self.link = link
        self.send = send
        self.reader = reader
        self.flusher = flusher
        self.reading = True
        self.holding = False
        self.queued = False
        self.closed = False  # the close frame went out
        self.ended = False  # the connection is over: nothing more is written
        self.stopped_reader = False
        self.failure: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Output is waiting (Link.on_wake): list the connection unless a flush is due."""
        if not (self.holding or self.queued or self.closed or self.ended) and self.task is None:
            self.queued = True
            self.flusher.add(self, soon=False)

    def release(self, soon: bool = False) -> None:
        """The reader is done feeding: list the connection if that left output waiting."""
        self.holding = False
        if self.queued or self.task is not None or self.closed or self.ended:
            return
        if self.host.has_pending(self.link):
            self.queued = True
            self.flusher.add(self, soon)

    def flush_now(self) -> None:
        """The flusher's turn: write what is pending without waiting, if possible."""
        self.queued = False
        if self.holding or self.task is not None or self.closed or self.ended:
            return  # somebody else owns the flush, or the connection is done
        try:
            self._flush_now()
        except Exception as exc:  # a bug of ours: this connection ends, the others flush
            self.failure = exc
            self._stop_reader()

    def _flush_now(self) -> None:
        host, link = self.host, self.link
        frames = host.outgoing(link, host.settings.max_batch)
        if frames and not self._send_now(self._message(frames)):
            return
        if link.closing is not None:
            code, reason = link.closing
            self.closed = True  # no flush after this one
            if self._send_now({"type": "websocket.close", "code": code, "reason": reason}):
                self._stop_reader()
            return
        if host.has_pending(link):  # more than one batch: the rest next iteration
            self.queued = True
            self.flusher.add(self, soon=True)

    def _message(self, frames: list[bytes]) -> dict[str, Any]:
        codec = self.link.codec
        body = frames[0] if len(frames) == 1 else codec.batch(frames)
        if codec.binary:
            return {"type": "websocket.send", "bytes": body}
        return {"type": "websocket.send", "text": body.decode("utf-8")}

    def _send_now(self, message: dict[str, Any]) -> bool:
        """Run uvicorn's send() to its end here if it does not wait (True); if it waits
        (the socket is paused), a writer task takes it over (False)."""
        sent = self.send(message)
        # uvicorn's send is a coroutine; any other awaitable is driven through one.
        coro = sent if isinstance(sent, types.CoroutineType) else _awaiting(sent)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return True
        except (OSError, RuntimeError):
            self._stop_reader()  # the socket is gone
            return False
        except Exception as exc:
            self.failure = exc
            self._stop_reader()
            return False
        self.task = asyncio.create_task(self._resume(coro, waiting))
        return False

    async def _resume(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        try:
            await _finish(coro, waiting)
            if self.closed:
                self._stop_reader()  # that was the close frame
            else:
                await self._flush()
        except (OSError, RuntimeError):
            self._stop_reader()
        except Exception as exc:
            self.failure = exc
            self._stop_reader()
        finally:
            self.task = None
            self.release()  # what was pushed meanwhile

    async def flush_inline(self) -> None:
        """Write the hello and any replay from the reader's task, before it reads."""
        self.holding = True
        try:
            await self._flush()
        finally:
            self.release()

    async def finish(self) -> None:
        """Make sure what is pending (the close frame) is written: by the running writer
        task, or here."""
        if self.task is not None and not self.task.done():
            await asyncio.wait((self.task,))
        if not self.closed:
            self.holding = True
            try:
                await self._flush()
            finally:
                self.holding = False

    async def cancel(self) -> None:
        self.ended = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _flush(self) -> None:
        host, link = self.host, self.link
        limit = host.settings.max_batch
        while not self.closed:
            frames = host.outgoing(link, limit)
            if frames:
                await self.send(self._message(frames))
            if link.closing is not None:
                code, reason = link.closing
                self.closed = True  # no flush after this one
                await self.send({"type": "websocket.close", "code": code, "reason": reason})
                if asyncio.current_task() is not self.reader:
                    self._stop_reader()
                return
            if not host.has_pending(link):
                return
            # A backlog of more than one batch: let the rest of the loop run between.
            await _next_iteration()

    def _stop_reader(self) -> None:
        if self.reading and not self.stopped_reader:
            self.stopped_reader = True
            self.reader.cancel()


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Run ``coro``, which already ran up to its first wait (it yielded ``waiting``), to
    its end the way a task would: wait for what it waits for, then resume it."""
    try:
        while True:
            if waiting is None:  # a bare yield: one loop iteration
                await _next_iteration()
            else:
                waiting._asyncio_future_blocking = False
                try:
                    await asyncio.wait((waiting,))
                except asyncio.CancelledError:
                    waiting.cancel()
                    coro.close()
                    raise
            waiting = coro.send(None)
    except StopIteration:
        return


@types.coroutine
def _next_iteration() -> Generator[None, None, None]:
    """Let the loop run once (what ``asyncio.sleep(0)`` does, minus its coroutine)."""
    yield


async def _close(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": code, "reason": short_reason(reason)})
