"""WebSocket transport: ``GET /anywire/ws`` (raw ASGI).

The reader (:mod:`.wsread`) runs in the connection's own task for the whole connection
(uvicorn's sans-I/O WebSocket stops reading, pongs included, until ``receive()`` is
called again), or, where the server offers the direct read (``anywire serve``), in the
server protocol's ``data_received``, message by message, while the task waits only for
the disconnect. Writing is done by whoever finds output waiting, one flush at a time
(:class:`_Writer`):

* after the reader has fed a message in, it flushes the answers itself, one loop
  iteration later (the settle round: an echo costs no task switch);
* a push from elsewhere (a broadcast, a timer) to a connection that has written nothing
  in this loop iteration or the one before is written at once, in the pusher's call
  (``_Writer._write_now``: no task, no loop iteration in between; a task only if the
  socket's buffer is full, see :mod:`.eager`);
* a push to a connection that wrote in this iteration (the next events of a burst) or
  the one before (a room busy every iteration) is written one iteration later, with
  whatever came meanwhile, in one message: every such connection from one callback
  (:class:`.eager.Batch`), not a task each. An idle connection holds no writer task.

So coalescing costs no latency when there is nothing to coalesce (one event at a time),
and a burst still goes out in few messages. Each flush coalesces everything pending into
one message (a batch), and yields to the loop between batches when a backlog remains.

A peer that does not read stalls the writes (uvicorn's ``send()`` waits while the socket
buffer is full), so a close could never go out and the connection would hold its task
and buffers forever: once a close is asked for, a connection that has not completed it
within ``ping_timeout`` is cut (the ASGI task ends; the session stays resumable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import types
from collections.abc import Awaitable, Generator
from typing import Any

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError, RemoteProtocolError
from ..core.frames import Connect, Resume, ResumeDirect
from .base import (
    Host,
    Link,
    Receive,
    Scope,
    Send,
    TransportInfo,
    byte_length,
    decode_frames,
    log_refused,
    peer_of,
    short_reason,
)
from .direct import DirectWrite, direct_writer
from .eager import Batch, Ticks, carry_on, run_eagerly
from .meter import METER_KEY, ControlMeter
from .traffic import Traffic
from .wsread import (
    FLUSH,
    QUIET_YIELD,
    RECEIVED,
    STOP,
    DirectRead,
    DirectSink,
    MessageReader,
    direct_reading,
)

__all__ = ["INFO", "WebSocketTransport"]

log = logging.getLogger("anywire")

INFO = TransportInfo("websocket", bidirectional=True, server_ping=True, binary=True)


class WebSocketTransport:
    """ASGI app for one WebSocket endpoint."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.traffic = Traffic()
        """Frames and bytes of every connection of this endpoint (metrics)."""
        self.ticks = Ticks()
        self.batch = Batch()
        self.settle = Batch(hops=1)  # the readers' answers (_Writer.answer)

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
        link = await self._handshake(scope, receive, send)
        if link is None:
            return
        self._meter(scope, link)
        task = asyncio.current_task()
        assert task is not None
        self.ticks.check_loop()
        writer = _Writer(
            self.host, link, send, task, self.ticks, direct_writer(scope), self.batch, self.settle
        )
        link.on_wake = writer.wake
        failure: BaseException | None = None
        try:
            try:
                await writer.flush_inline()  # the hello and any replay
                await self._reader(scope, link, receive, writer)
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
            elif link.closing is not None and not writer.closed and not writer.cut:
                # The reader asked for a close: send it (bounded).
                with contextlib.suppress(TimeoutError, OSError, RuntimeError):
                    async with asyncio.timeout(1.0):
                        await writer.finish()
        finally:
            writer.reading = False
            link.on_wake = None
            self.host.detach(link)
            await writer.cancel()

    def _meter(self, scope: Scope, link: Link) -> None:
        """Charge this connection's pings and pongs to its session from now on (when
        the server's WebSocket protocol meters them: ``anywire serve`` does)."""
        meter = scope.get("extensions", {}).get(METER_KEY)
        if not isinstance(meter, ControlMeter) or link.sid is None:
            return
        host, sid = self.host, link.sid

        def charge() -> None:
            host.charge(sid, 1, "pings")

        def flood() -> None:
            link.close(CloseCode.FLOOD, "flood: too many pings")

        meter.bind(charge, flood)

    async def _handshake(self, scope: Scope, receive: Receive, send: Send) -> Link | None:
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
            if not isinstance(first, Connect | Resume | ResumeDirect):
                raise RemoteProtocolError("the first frame must be connect or resume")
            link = Link(INFO, codec, self.traffic, peer_of(scope))
            link.traffic.bytes_in += byte_length(data)
            if isinstance(first, ResumeDirect):  # a resume without negotiate
                await self.host.resume_direct(scope, link, first)
            else:
                await self.host.attach(link, first)
        except ProtocolError as exc:
            log_refused("websocket first message", exc, scope)
            if exc.code == CloseCode.SESSION_UNKNOWN:
                await self.host.stranger(scope)  # a ticket of no one's: held when busy
            await _close(send, exc.code, exc.message)
            return None
        return link

    async def _reader(self, scope: Scope, link: Link, receive: Receive, writer: _Writer) -> None:
        """Read until the connection ends: directly where the server offers it (as soon
        as nothing waits for ``receive()``), else message by message through ASGI."""
        reader = MessageReader(self.host, link, writer, scope)
        read = reader.read
        direct = direct_reading(scope)
        quiet = 0  # messages that wrote nothing since the last yield
        while not writer.closed:
            if direct is not None:
                sink = DirectSink(reader, writer, direct, writer.loop)
                if direct.read_direct(sink.__call__):  # (a bound method: no tp_call)
                    await _read_directly(direct, sink, receive)
                    return
            message = await receive()
            data = message.get("text")
            if data is None:
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    continue
            step = read(data)
            if step == STOP:
                return
            if step in (FLUSH, RECEIVED):
                if step == FLUSH:
                    await writer.flush_held(settle=True)
                quiet += 1
                if quiet >= QUIET_YIELD:
                    # Messages that write nothing (a flood's burst, events to no one)
                    # would otherwise run back to back for a whole TCP read: let the
                    # other connections in now and then.
                    quiet = 0
                    await _next_iteration()


async def _read_directly(direct: DirectRead, sink: DirectSink, receive: Receive) -> None:
    """The connection's task while the protocol hands messages to ``sink``: only the
    disconnect still comes through ``receive()``. The messages that waited for a resume
    are handled before it (they came before it); a stop of the task leaves them."""
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                for data, binary in direct.end_direct():
                    sink.take(data, binary)  # (not once stopped)
                return
    finally:
        sink.stopped = True
        direct.end_direct()


class _Writer:
    """The write side of one connection: at most one flush runs at a time.

    ``busy`` is True while a flush runs (in the reader, in the pusher's call or in a
    writer task) or while the reader holds the right to flush; a wake-up then does
    nothing, because that flush loops until nothing is pending. Otherwise a wake-up
    writes at once if this connection wrote nothing in this loop iteration or the one
    before (``wrote``, counted by :class:`.eager.Ticks`), else starts a writer task that
    batches what comes until the next iteration.
    """

    __slots__ = (
        "batch",
        "busy",
        "closed",
        "cut",
        "cut_timer",
        "direct",
        "ended",
        "failure",
        "held",
        "host",
        "link",
        "loop",
        "reader",
        "reading",
        "send",
        "settle",
        "stopped_reader",
        "task",
        "ticks",
        "turn",
        "wrote",
    )

    def __init__(
        self,
        host: Host,
        link: Link,
        send: Send,
        reader: asyncio.Task[None],
        ticks: Ticks,
        direct: DirectWrite | None = None,
        batch: Batch | None = None,
        settle: Batch | None = None,
    ) -> None:
        self.ticks = ticks
        self.batch = batch or Batch()
        self.settle = settle or Batch(hops=1)
        # The batched write's callback, bound once: a bound method made per Batch.add is
        # an object the collector tracks, alive until the round runs, so a busy room's
        # round (one per connection) set off a young collection every round or two
        # (bench/tick_timeline.py; docs/perf/tick-round2.md).
        self.turn = self._batched
        self.held: bytes | None = None  # the reader's answer, due in the settle round
        self.ended = False  # cancel() ran: a batched write due later does nothing
        # The server's write without send() (.direct), tried before send() when offered.
        self.direct = direct
        self.loop = reader.get_loop()
        self.wrote = -1  # the loop iteration (ticks.now()) of the last write
        self.host = host
        self.link = link
        self.send = send
        self.reader = reader
        self.reading = True
        self.busy = False
        self.closed = False  # the close frame went out
        self.stopped_reader = False
        self.failure: BaseException | None = None
        # The flush running or due: a task, or the shared future of a Batch round (never
        # cancelled here: see _own_task).
        self.task: asyncio.Future[None] | None = None
        self.cut = False  # given up on: the peer did not take its close in time
        self.cut_timer: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        """Output is waiting (Link.on_wake): start a writer task unless a flush is due."""
        if self.link.closing is not None and self.cut_timer is None:
            # The close must go out within ping_timeout, or the peer is not reading.
            delay = self.host.settings.ping_timeout
            self.cut_timer = asyncio.get_running_loop().call_later(delay, self._cut)
        if not self.busy and not self.closed:
            self.busy = True
            ticks = self.ticks
            now = ticks.n if ticks.armed else ticks.now()
            ticks.asked = True
            if self.wrote < now - 1:
                # Nothing written in this loop iteration or the one before: nothing to
                # coalesce with, write now. (self.task stays None unless the write has to
                # wait for the socket.)
                self.task = None
                self._write_now(now)
            else:
                # Written in this iteration (a burst) or the one before (a busy room: an
                # event every iteration): batch with what comes in the next one. Until
                # then the host's pushes need not wake this link (Link.due).
                self.task = self.batch.add(self.loop, self.turn)
                self.link.due = True

    def hold(self) -> None:
        """The reader is about to feed frames in and will flush the answers itself."""
        if not self.busy:
            self.busy = True
            self.task = None

    def release(self) -> None:
        """The reader gives up a hold without flushing."""
        if self.task is None:
            self.busy = False
            if self.host.has_pending(self.link):
                self.wake()

    async def flush_held(self, settle: bool = False) -> None:
        """Flush after :meth:`hold`, unless a writer task was already running then.

        ``settle`` (the reader's answers): write one loop iteration later, when every
        connection that had input in this iteration has been fed, so the answers leave
        back to back. Spread out, nearly every write found its peer asleep and paid to
        wake it (on the echo bench ~10% of the server's CPU, in the kernel); together
        they cost one wake-up per burst. Pushes meanwhile join the same message. With
        nothing to write (the frame was an rx, say) there is no wait.
        """
        if self.task is not None:
            return  # that task flushes; it saw busy first
        try:
            if settle:
                if not self.host.has_pending(self.link):
                    return
                await _next_iteration()
            await self._flush()
        finally:
            self.busy = False

    def flush_soon(self) -> None:
        """:meth:`flush_held` with ``settle`` for a reader that may not wait (the direct
        read): the flush runs in the transport's settle round, as :meth:`answer`'s
        write does."""
        if self.task is not None:
            return  # that task or round flushes; it saw busy first
        if not self.host.has_pending(self.link):
            self.busy = False
            return
        self.task = self.settle.add(self.loop, self.turn)

    def answer(self, body: bytes) -> None:
        """Write ``body`` (an answer built while holding: :meth:`hold`) one loop iteration
        later, for the reason :meth:`flush_held` gives, then whatever was pushed or fed
        meanwhile. The reader does not wait for it: the write runs in the transport's
        settle round (one callback for every connection's answer, :class:`.eager.Batch`),
        not in a resumption of the reader's task (a task step down the whole ASGI call
        chain per round trip: docs/perf/echo.md). ``busy`` stays set until then, and
        ``task`` is the round's future, so the reader feeds what comes meanwhile without
        answering it itself, and a wake-up leaves it to this write."""
        self.held = body
        self.task = self.settle.add(self.loop, self._answered)

    def _answered(self) -> None:
        """The settle round's turn: write the held answer, then what came meanwhile."""
        body, self.held = self.held, None
        self.task = None
        if body is None or self.ended or self.cut or self.closed:
            self.busy = False
            return
        self._write_now(self.ticks.now(), body)

    async def flush_inline(self) -> None:
        """Flush from the reader's task when no writer task runs."""
        if not self.busy:
            self.hold()
            await self.flush_held()

    async def finish(self) -> None:
        """Make sure what is pending (the close frame) is written: by the running writer
        task, or here."""
        while self.task is not None and not self.task.done():
            # (A batched write's round may hand on to a task of its own: wait for that.)
            await asyncio.wait((self.task,))
        if not self.closed:
            self.busy = True
            try:
                await self._flush()
            finally:
                self.busy = False

    def _cut(self) -> None:
        """The close did not go out within ping_timeout: the peer does not read. Stop
        writing and reading; the connection's task ends and the session detaches."""
        self.cut = True
        log.info("websocket peer not reading: connection cut (%s)", self.link.closing)
        task = self._own_task()
        if task is not None:
            task.cancel()
        self.stop_reader()

    async def cancel(self) -> None:
        self.ended = True
        if self.cut_timer is not None:
            self.cut_timer.cancel()
        task = self._own_task()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _own_task(self) -> asyncio.Task[None] | None:
        """The flush task to cancel, if one runs (a Batch round's future is shared: the
        batched write sees ``cut`` or ``ended`` and does nothing instead)."""
        task = self.task
        if isinstance(task, asyncio.Task) and not task.done():
            return task
        return None

    def _batched(self) -> None:
        """A batched write's turn (:class:`.eager.Batch`, an iteration after the push
        that asked for it): one batch now, the rest as :meth:`_write_now` goes on."""
        self.task = None
        self.link.due = False
        if self.ended or self.cut or self.closed:
            self.busy = False
            return
        self._write_now(self.ticks.now())

    def _write_now(self, now: int, first: bytes | None = None) -> None:
        """The eager path (``busy`` is set): one batch written in this very call, with no
        coroutine of ours on the way (this runs for every delivery of an idle room). A
        send that has to wait for the socket goes on in a task, and so does a close or
        a backlog of more than one batch (:meth:`_flush`, still started at once).
        ``first``: a message to write instead of that batch, before whatever is pending
        (the reader's answer, :meth:`answer`; written even if a close is due)."""
        host, link = self.host, self.link
        if link.closing is None or first is not None:
            try:
                body = first
                if body is None:
                    frames = host.outgoing(link, host.settings.max_batch)
                    if frames:
                        body = frames[0] if len(frames) == 1 else link.codec.batch(frames)
                if body is not None:
                    link.traffic.bytes_out += len(body)
                    self.wrote = now
                    direct = self.direct
                    if direct is None or not direct(body, link.codec.binary):
                        sending: Any = self.send(self._message(body))
                        if type(sending) is not types.CoroutineType:  # (another server's)
                            sending = _awaiting(sending)
                        try:
                            waiting = sending.send(None)
                        except StopIteration:
                            pass
                        else:  # the socket's buffer is full: the rest of the send waits
                            self.task = asyncio.ensure_future(self._finish(sending, waiting))
                            return
                # After outgoing(), link.more is has_pending() without its calls (nothing
                # ran in between that could push); the reader's answer ran no outgoing():
                # what was pushed while it waited for its round is only found by asking.
                more = link.more if first is None else host.has_pending(link)
                if link.closing is None and not more:
                    self.busy = False
                    return
            except Exception as exc:
                self.busy = False
                self.fail(exc)
                return
        self.task = run_eagerly(self._run())

    async def _finish(self, sending: Any, waiting: Any) -> None:
        """A write of :meth:`_write_now` that had to wait: finish it, then flush."""
        try:
            await carry_on(sending, waiting)
            await self._flush()
        except Exception as exc:
            self.fail(exc)
        finally:
            self.busy = False
            self.task = None

    async def _run(self) -> None:
        try:
            await self._flush()
        except Exception as exc:
            self.fail(exc)
        finally:
            self.busy = False
            self.task = None

    def fail(self, exc: Exception) -> None:
        """A write failed: the socket is gone (OSError, or uvicorn's RuntimeError after a
        close), or a bug of ours (kept for the connection's task to log). Either way the
        reader stops and the connection ends."""
        if not isinstance(exc, OSError | RuntimeError):
            self.failure = exc
        self.stop_reader()

    async def _flush(self) -> None:
        host, link = self.host, self.link
        limit = host.settings.max_batch
        codec = link.codec
        while not self.closed:
            frames = host.outgoing(link, limit)
            if frames:
                body = frames[0] if len(frames) == 1 else codec.batch(frames)
                link.traffic.bytes_out += len(body)
                self._wrote()
                direct = self.direct
                if direct is None or not direct(body, codec.binary):
                    await self.send(self._message(body))
            if link.closing is not None:
                code, reason = link.closing
                self.closed = True  # no flush after this one
                await self.send({"type": "websocket.close", "code": code, "reason": reason})
                if asyncio.current_task() is not self.reader:
                    self.stop_reader()
                return
            if not host.has_pending(link):
                return
            # A backlog of more than one batch: let the rest of the loop run between.
            await asyncio.sleep(0)

    def _wrote(self) -> None:
        self.wrote = self.ticks.now()

    def _message(self, body: bytes) -> dict[str, Any]:
        """The ASGI message carrying ``body``: binary for MessagePack, text for JSON (a
        plain function, not a coroutine around send(): it runs for every write)."""
        if self.link.codec.binary:
            return {"type": "websocket.send", "bytes": body}
        return {"type": "websocket.send", "text": body.decode("utf-8")}

    def stop_reader(self) -> None:
        if self.reading and not self.stopped_reader:
            self.stopped_reader = True
            self.reader.cancel()


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable


@types.coroutine
def _next_iteration() -> Generator[None, None, None]:
    """Let the loop run once (what ``asyncio.sleep(0)`` does, minus its coroutine)."""
    yield


async def _close(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": code, "reason": short_reason(reason)})
