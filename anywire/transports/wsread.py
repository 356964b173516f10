"""Reading a WebSocket connection's client messages: one message in, fed to the host.

:class:`MessageReader` is what the WebSocket transport does with each client message
after the handshake: measure it, refuse it when too large, try the request/response
hot path (``Host.answer``: the answer handed to the writer whole) and otherwise feed it
(``Host.feed``), answering a bad frame with an error frame. It does not wait for
anything, so it serves two ways of reading:

* the ASGI loop (``await receive()`` in the connection's task), under any ASGI server;
* the direct read, where the server's WebSocket protocol (``anywire serve``'s,
  :mod:`anywire.server.wsreading`) offers a :class:`DirectRead` in the scope
  (``scope["extensions"]["anywire.read"]``): each complete data message is handed to
  :class:`DirectSink` in the protocol's ``data_received``, synchronously, as the
  direct write (:mod:`.direct`) does the other way. Per message that saves the ASGI
  dict, the text's decoding to ``str``, the queue's future and a task step down the
  whole ASGI call chain (docs/perf/echo.md).

Flow control is explicit in the direct read: :class:`DirectSink` returns False to pause
reading (what the protocol already parsed waits there, in order) and resumes it one loop
iteration after a run of messages that wrote nothing (the other connections' turn). A
write waiting for the socket does not pause it (nor did it the ASGI loop, for answers).
Order is kept by the writer: a message read while an earlier one's answer waits for its
settle round is fed, not answered, and its output goes out after that answer
(``_Writer.answer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..core.closecodes import CloseCode
from ..core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ..core.frames import ErrorFrame
from .base import Host, Link, Scope, byte_length, decode_general, log_refused

__all__ = [
    "ANSWERED",
    "FLUSH",
    "QUIET_YIELD",
    "READ_KEY",
    "RECEIVED",
    "STOP",
    "DirectRead",
    "DirectSink",
    "MessageReader",
    "direct_reading",
]

READ_KEY = "anywire.read"
"""The key of the server protocol's :class:`DirectRead` in the scope's ``extensions``."""

QUIET_YIELD = 16  # messages that write nothing, handled between two yields to the loop

# What MessageReader.read() leaves to its caller:
ANSWERED = 0  # the answer is with the writer (its settle round): read on
FLUSH = 1  # flush what feeding produced (held: the reader's to flush)
STOP = 2  # the connection is closing (or closed): read nothing more
RECEIVED = 3  # a receipt (or a refused one: its error frame is with the writer): read on


class DirectRead(Protocol):
    """What the server's WebSocket protocol offers for the direct read."""

    def read_direct(self, sink: Callable[[bytes, bool], bool]) -> bool:
        """From now on hand every complete data message to ``sink(data, binary)`` in
        ``data_received``, in order (text as its UTF-8 bytes, checked). ``sink`` returns
        False when it does not take the message now: reading pauses, and that message
        and those read after it wait until :meth:`resume_direct` hands them on again
        (the sink's to call). False, nothing changed,
        when messages already wait for ``receive()`` (read those first) or the
        connection is closing."""
        ...

    def resume_direct(self) -> None:
        """Hand on what waited while paused, then read again."""
        ...

    def end_direct(self) -> list[tuple[bytes, bool]]:
        """Stop the direct read; the messages that waited while paused, in order."""
        ...


def direct_reading(scope: Mapping[str, Any]) -> DirectRead | None:
    """The connection's direct read, if its server offers one."""
    found = scope.get("extensions", {}).get(READ_KEY)
    return found if found is not None and hasattr(found, "read_direct") else None


class Writer(Protocol):
    """What the reader needs of the transport's writer (``websocket._Writer``)."""

    task: asyncio.Future[None] | None

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def answer(self, body: bytes) -> None: ...

    def flush_soon(self) -> None: ...

    def fail(self, exc: Exception) -> None: ...

    def stop_reader(self) -> None: ...


class MessageReader:
    """One connection's handling of a client message (see the module docstring)."""

    __slots__ = (
        "codec",
        "decode_event",
        "decode_rx",
        "host",
        "link",
        "max_batch",
        "max_size",
        "scope",
        "sid",
        "traffic",
        "writer",
    )

    def __init__(self, host: Host, link: Link, writer: Writer, scope: Scope) -> None:
        assert link.sid is not None
        self.host, self.link, self.writer, self.scope = host, link, writer, scope
        self.sid = link.sid
        self.codec = link.codec
        self.decode_event = link.codec.decode_event
        self.decode_rx = link.codec.decode_rx
        self.traffic = link.traffic
        self.max_size = host.settings.max_frame_size
        self.max_batch = host.settings.max_batch

    def read(self, data: bytes | str) -> int:
        """Handle one client message: :data:`ANSWERED`, :data:`FLUSH` (then the caller
        flushes the writer's hold), :data:`RECEIVED` or :data:`STOP`. A bug of ours (or a
        failure of the host) raises, with the writer's hold released."""
        # (A UTF-8 character is at most 4 bytes: short text needs no measuring.)
        size = len(data) if type(data) is bytes or data.isascii() else byte_length(data)
        self.traffic.bytes_in += size
        if size > self.max_size:
            too_big = RemoteProtocolError(f"frame over {self.max_size} bytes", 4503)
            log_refused("websocket frame", too_big, self.scope)
            self.link.close(too_big.code, too_big.message)
            return STOP
        n = self.decode_rx(data)
        if n is not None:
            # A lone rx (the commonest message under a stream: ~1 a second per client)
            # straight to the session: no frame, no batch, and no hold of the writer,
            # since a receipt writes nothing.
            try:
                self.host.receipt(self.sid, n)
            except LocalProtocolError:
                raise  # a bug of ours
            except ProtocolError as exc:
                return self._receipt_refused(exc)
            return RECEIVED
        host, writer, link = self.host, self.writer, self.link
        writer.hold()  # what feeding produces is the caller's to flush (FLUSH)
        answer = None
        try:
            # Request/response (one event, no writer task running): the answer comes
            # back whole, ready to write. The commonest message is tried first.
            event = self.decode_event(data)
            if event is not None:
                if writer.task is None:
                    answer = host.answer(link, event)
                if answer is None:
                    host.feed(self.sid, [event])
            else:
                frames, error = decode_general(self.codec, data, self.max_batch)
                if len(frames) == 1 and error is None and writer.task is None:
                    answer = host.answer(link, frames[0])
                if answer is None:
                    if frames or error is None:  # an empty batch is charged too
                        host.feed(self.sid, frames)
                    if error is not None:
                        host.reject(self.sid, error)
                        raise error
        except RemoteProtocolError as exc:
            if exc.code == CloseCode.FLOOD:
                writer.release()
                link.close(exc.code, exc.message)
                return STOP
            # A bad frame is answered, not fatal: the connection and session live on.
            log_refused("websocket frame", exc, self.scope)
            link.push(link.codec.encode(ErrorFrame(exc.code, exc.message).to_wire()))
        except LocalProtocolError:
            writer.release()
            raise  # a bug of ours
        except ProtocolError as exc:
            # The session ended while this message was on its way (drained, moved to
            # another node, expired): close with the code it ended with, as the HTTP
            # transports answer, not as a failure of ours.
            writer.release()
            link.close(exc.code, exc.message)
            return STOP
        except BaseException:
            writer.release()
            raise
        if answer:
            writer.answer(answer)  # written an iteration later; read on meanwhile
            return ANSWERED
        return FLUSH

    def _receipt_refused(self, exc: ProtocolError) -> int:
        """What :meth:`read` makes of a refused receipt: 4008 closes, a bad ``n`` (above
        what was sent) is answered with an error frame (which wakes the writer, as any
        push does), a session that ended meanwhile closes with its code."""
        link = self.link
        if isinstance(exc, RemoteProtocolError) and exc.code != CloseCode.FLOOD:
            log_refused("websocket frame", exc, self.scope)
            link.push(link.codec.encode(ErrorFrame(exc.code, exc.message).to_wire()))
            return RECEIVED
        link.close(exc.code, exc.message)
        return STOP


class DirectSink:
    """The transport's end of the direct read: the protocol calls it with each message
    (``sink(data, binary)``, :meth:`DirectRead.read_direct`). After
    :data:`QUIET_YIELD` messages that wrote nothing it does not take the next one
    (False: reading pauses) for one loop iteration, the other connections' turn: the
    ASGI loop's yield, made explicit. A write that waits for the socket does not stop
    the reading, as it did not through ASGI either (the session's outbox budget bounds
    what a peer that does not read can make us hold: 4002). A message that ends the
    connection, or a failure, stops the connection's task (``Writer.stop_reader`` /
    ``fail``), which closes as at the ASGI loop's end; nothing more is taken."""

    __slots__ = ("direct", "loop", "quiet", "read", "stopped", "text", "writer")

    def __init__(
        self,
        reader: MessageReader,
        writer: Writer,
        direct: DirectRead,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.read = reader.read
        self.writer = writer
        self.direct = direct
        self.loop = loop
        # A text message to a binary codec goes on as str, as through ASGI (the codec
        # refuses it in its own words); JSON reads the bytes (no decoding to str).
        self.text = reader.codec.binary
        self.quiet = 0  # messages that wrote nothing since the last yield
        self.stopped = False

    def __call__(self, data: bytes, binary: bool) -> bool:
        """Take one message (True), or not now (False: reading pauses)."""
        if self.stopped:
            return False
        if self.quiet >= QUIET_YIELD:
            # Messages that write nothing (a flood's burst, events to no one) would
            # otherwise run back to back for a whole TCP read: let the other connections
            # in now and then.
            self.quiet = 0
            self.loop.call_soon(self.resume)
            return False
        # (take() inlined: this runs for every message)
        try:
            step = self.read(data.decode() if self.text and not binary else data)
        except Exception as exc:
            self.stopped = True
            self.writer.fail(exc)  # logged, closed with 1011 unless the socket is gone
            return True
        if step == ANSWERED:
            return True
        if step == RECEIVED:
            self.quiet += 1  # (wrote nothing)
            return True
        self._after(step)
        return True

    def take(self, data: bytes, binary: bool) -> None:
        """Handle one message now, paused or not (the connection's end: what waited
        before the disconnect); nothing once stopped."""
        if self.stopped:
            return
        try:
            step = self.read(data.decode() if self.text and not binary else data)
        except Exception as exc:
            self.stopped = True
            self.writer.fail(exc)
            return
        self._after(step)

    def _after(self, step: int) -> None:
        """What a step other than ANSWERED leaves to do."""
        if step == FLUSH:
            self.writer.flush_soon()
            self.quiet += 1
        elif step == RECEIVED:
            self.quiet += 1
        elif step == STOP:
            self.stopped = True
            self.writer.stop_reader()  # the connection's task sends the close and ends

    def resume(self) -> None:
        """Take messages again (those that waited first), unless stopped meanwhile."""
        if not self.stopped:
            self.direct.resume_direct()
