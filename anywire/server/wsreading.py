"""The direct read of uvicorn's sans-I/O WebSocket protocol (issue #17).

uvicorn hands each received message to the app through ASGI: the frames' bytes decoded
to ``str`` (text), a message dict, the received-message queue, and a wake-up of the
connection's task, resumed down the whole ASGI call chain to ``receive()``; it pauses
reading after every message until ``receive()`` took it. :class:`DirectReadProtocol`
offers, once the transport asks for it
(:class:`anywire.transports.wsread.DirectRead`, ``scope["extensions"]["anywire.read"]``),
to hand each complete text or binary message to the transport's sink in
``data_received`` itself: the bytes as parsed (a text message's UTF-8 checked as uvicorn
checks it: a bad one closes with 1007), with no dict, no queue, no task step.

While reading directly, a message that is one whole frame (FIN, text or binary, masked,
within ``ws_max_size``: the commonest) is also read here from the bytes, without the
``websockets`` parser (:mod:`.wsparse`); any other frame is handed to ``websockets``,
alone when it is complete, so the read here goes on after it, and in the order it came
(:meth:`DirectReadProtocol.data_received`). Only where ``websockets`` would have done
nothing with the frame but list it: its parser between frames, no fragmented message in
progress, no extension (permessage-deflate), the connection open, no debug log.

Everything else stays uvicorn's and ``websockets``': the handshake, pings and pongs,
close frames, the joining of fragmented messages (``handle_cont``: only a complete
message reaches the sink), bad frames (1002), ``ws_max_size`` (1009), and the
disconnect, which still goes through the queue to ``receive()``. The direct read starts
only when no message waits in the queue (those are read first, through ``receive()``),
so the order is kept.

Flow control: the sink returns False to refuse a message for now. Reading stops
(``pause_reading``, and uvicorn's flag, which its close handling clears) and that
message and the rest of the same TCP read, already parsed, wait here in order until
:meth:`~DirectReadProtocol.resume_direct` hands them on again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.streams import StreamReader

from ..transports.wsread import READ_KEY
from .wsparse import HEADER_MAX, apply_mask, frame_size, read_messages

__all__ = ["DirectReadProtocol"]

Sink = Callable[[bytes, bool], bool]

# One whole data frame alone in a read, short enough for the 7-bit length: FIN, no RSV
# bit, opcode 1 or 2, the mask bit set, the 4-byte key, then ``len(data) - 6`` bytes of
# payload, so its second byte is 0x80 + len(data) - 6 (wsparse.read_messages' first case).
_TEXT = 0x81
_BINARY = 0x82
_LONE_END = 6 + 126  # reads shorter than this
_LONE_SECOND = 0x80 - 6

_PARSE = WebSocketsSansIOProtocol.data_received  # uvicorn's: websockets parses it all
_OPEN = State.OPEN
_AT_EOF = StreamReader.at_eof.__code__  # where websockets' parser waits between frames


class DirectReadProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O protocol with the direct read (see the module docstring)."""

    # Class-level defaults, set on the instance only when they change (memory per
    # connection).
    sink: Sink | None = None  # the transport's, while reading directly
    waiting: list[tuple[bytes, bool]] | None = None  # parsed while paused, in order
    paused = False  # the sink asked for a pause
    stopped = False  # reading stopped for good (a flood: never resumed here)

    # Where websockets' parser stands, for the read of whole frames here (data_received):
    # 0 idle between frames; > 0 that many bytes short of the end of a frame it began;
    # -2 inside the header of a frame whose bytes so far are ``head``; -1 not known.
    owed = -1
    head = b""

    def data_received(self, data: bytes) -> None:
        """While reading directly, the whole single-frame messages (:mod:`.wsparse`) are
        taken from the bytes here and handed on as :meth:`handle_text` and
        :meth:`handle_bytes` would; any other frame goes to websockets, alone when it is
        complete (then the read here goes on after it), else with the rest of the data
        (then it goes on once websockets' frame is complete). Not at all where
        websockets would do more than list the frame: a connection not open, an
        extension, a fragmented message in progress, its debug log (or a fragment size
        limit, which uvicorn does not set). (``conn._state``, as ``write_now`` reads it:
        ``conn.state`` is a property, a call on every read.)"""
        conn = self.conn
        if (
            self.sink is None
            or conn._state is not _OPEN
            or conn.extensions
            or conn.debug
            or conn.max_fragment_size is not None
        ):
            if self.owed != -1:
                self.owed = -1
            _PARSE(self, data)
            return
        start = self._finish_frame(data) if self.owed else 0
        end = len(data)
        limit: int | None = conn.max_message_size
        if (
            start == 0
            and 6 <= end < _LONE_END
            and data[1] == end + _LONE_SECOND
            and (data[0] == _TEXT or data[0] == _BINARY)
            and conn.current_size is None
            and (limit is None or end - 6 <= limit)
        ):
            # The read is one whole small masked data frame, nothing else: a client's
            # receipt, a request. What the loop below does with it, without read_messages'
            # loop and list (the commonest read: issue #17).
            payload = apply_mask(data[6:], data[2:6])
            if data[0] == _BINARY or self.close_sent or self.paused or not payload.isascii():
                self._message(payload, data[0] == _BINARY)
            elif not self.sink(payload, False):
                self._wait(payload, False)
            return
        while 0 <= start < end:
            if conn._state is not _OPEN:
                # Closing: what follows is websockets' to discard or read (the peer's
                # close reply), unless it failed and uvicorn already closed.
                self.owed = -1
                if conn.parser_exc is None:
                    _PARSE(self, data[start:])
                return
            if conn.current_size is None:
                messages, start = read_messages(data, start, limit)
                for payload, binary in messages:
                    sink = self.sink
                    if (
                        sink is None
                        or binary
                        or self.close_sent
                        or self.paused
                        or not payload.isascii()
                    ):
                        self._message(payload, binary)
                    elif not sink(payload, False):
                        self._wait(payload, False)
                if start == end or conn._state is not _OPEN:
                    continue
            size = frame_size(data, start)
            if size < 0 or start + size > end:
                # It goes on in the next read: websockets has it from here.
                if size < 0:
                    self.owed = -2
                    self.head = data[start:]
                else:
                    self.owed = start + size - end
                _PARSE(self, data[start:] if start else data)
                return
            start += size
            _PARSE(self, data[start - size : start])

    def _finish_frame(self, data: bytes) -> int:
        """websockets was not known idle between frames: hand it what completes its
        frame. The offset in ``data`` where it is idle again, or -1 (not in ``data``:
        all of it went to websockets)."""
        owed = self.owed
        if owed == -1:
            conn = self.conn
            if not conn.reader.buffer and _waits_for_a_frame(conn.parser):
                self.owed = 0
                return 0
            _PARSE(self, data)
            return -1
        if owed == -2:
            head = self.head + data[:HEADER_MAX]
            size = frame_size(head, 0)
            if size < 0:
                self.head = head
                _PARSE(self, data)
                return -1
            owed = size - len(self.head)
            del self.head
        if owed > len(data):
            self.owed = owed - len(data)
            _PARSE(self, data)
            return -1
        self.owed = 0
        _PARSE(self, data[:owed] if owed < len(data) else data)
        return owed

    def _message(self, data: bytes, binary: bool) -> None:
        """A whole message read here, as :meth:`handle_text` or :meth:`handle_bytes`
        would take it from websockets."""
        if self.sink is not None:
            self._receive(data, binary)
            return
        # The direct read ended in this read: the rest go through the queue (uvicorn's).
        self.curr_msg_data_type = "bytes" if binary else "text"
        self.frames = [data]
        WebSocketsSansIOProtocol.send_receive_event_to_app(self)

    def offer_direct_read(self) -> None:
        """Put this protocol in the scope as the connection's direct read (called when
        the handshake was accepted)."""
        extensions: Any = self.scope["extensions"]
        extensions[READ_KEY] = self

    def read_direct(self, sink: Sink) -> bool:
        """:meth:`anywire.transports.wsread.DirectRead.read_direct`."""
        if self.close_sent or self.disconnected or not self.queue.empty():
            return False
        self.sink = sink
        return True

    def resume_direct(self) -> None:
        """:meth:`anywire.transports.wsread.DirectRead.resume_direct`."""
        if not self.paused:
            return
        self.paused = False
        waiting = self.waiting
        while waiting and not self.paused and self.sink is not None and not self.close_sent:
            data, binary = waiting.pop(0)
            self._hand_on(data, binary)
        if not self.paused:
            self.waiting = None
            if self.read_paused and not self.stopped:
                self.read_paused = False
                self.transport.resume_reading()

    def end_direct(self) -> list[tuple[bytes, bool]]:
        """:meth:`anywire.transports.wsread.DirectRead.end_direct`."""
        waiting = self.waiting or []
        self.sink = self.waiting = None
        self.paused = False  # (reading stays as it is: the connection is ending)
        return waiting

    def handle_text(self, event: Frame) -> None:
        sink = self.sink
        if sink is None or not event.fin:
            super().handle_text(event)
            return
        # A whole message in one frame. The commonest case (ASCII, open, not paused)
        # inline: this runs for every request.
        data: bytes = event.data  # type: ignore[assignment]
        if self.close_sent or self.paused or not data.isascii():
            self._receive(data, False)
        elif not sink(data, False):
            self._wait(data, False)

    def handle_bytes(self, event: Frame) -> None:
        if self.sink is not None and event.fin:
            self._receive(event.data, True)  # type: ignore[arg-type]
        else:
            super().handle_bytes(event)

    def send_receive_event_to_app(self) -> None:
        # A fragmented message's end (or, before the direct read, any message).
        if self.sink is None:
            super().send_receive_event_to_app()
            return
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        self._receive(data, self.curr_msg_data_type == "bytes")

    def _receive(self, data: bytes, binary: bool) -> None:
        """A whole message while reading directly: to the sink, or to wait in line."""
        if self.close_sent:
            return  # past our close: discarded, as uvicorn does
        if not binary and not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:
                # What uvicorn does with it (RFC 6455 8.1: fail the connection, 1007).
                self.logger.exception("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        if self.paused:
            assert self.waiting is not None
            self.waiting.append((data, binary))
        elif not self.sink(data, binary):  # type: ignore[misc]
            self._wait(data, binary)

    def _hand_on(self, data: bytes, binary: bool) -> None:
        sink = self.sink
        assert sink is not None
        if not sink(data, binary):
            self._wait(data, binary)

    def _wait(self, data: bytes, binary: bool) -> None:
        """The sink did not take ``data``: it waits, first in line, and reading pauses.
        Not once our close went out (the sink's handling of an earlier message may have
        sent it): then ``data`` is discarded, as uvicorn discards what comes after its
        close, and reading goes on, or the peer's close reply would not be read and the
        connection would hang on until uvicorn's close timeout."""
        if self.close_sent:
            self.waiting = None
            return
        self.paused = True
        waiting = self.waiting
        if waiting is None:
            self.waiting = [(data, binary)]
        else:
            waiting.insert(0, (data, binary))
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()


def _waits_for_a_frame(parser: Any) -> bool:
    """Whether websockets' parser generator waits between frames (in ``at_eof``, at the
    top of its loop), not inside one."""
    while parser.gi_yieldfrom is not None:
        parser = parser.gi_yieldfrom
    return parser.gi_code is _AT_EOF
