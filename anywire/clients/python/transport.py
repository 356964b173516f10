"""What every client transport shares: the inbox, the ordered sender, and the upstream POST.

A transport is one connection attempt. The client only uses this interface and never
branches on the concrete class:

* :meth:`ClientTransport.open` sends connect/resume and returns the server's hello (the
  caller bounds it with its connect timeout);
* :meth:`ClientTransport.send` queues frames; one sender task writes them in order, in
  as few messages as the server's ``max_batch`` / ``max_frame_size`` allow, with at most
  one write (one POST for the HTTP transports) in flight;
* :meth:`ClientTransport.recv` returns the next decoded frames, or raises
  :class:`TransportClosed` once the connection is over (after every frame that came
  before the end has been returned);
* :meth:`ClientTransport.abort` drops the connection without a word to the server;
  :meth:`ClientTransport.close` stops every task of the transport. A POST in flight is
  the exception to both: the server may have processed it already, so it is left to
  finish (bounded by its request timeout) and its answer confirms its frames in the
  client's peer state (:meth:`ClientTransport.confirm_into`), unless a hello renumbered
  them meanwhile (protocol 6.7, 8.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from ...core.closecodes import CloseCode
from ...core.codec import Codec
from ...core.errors import RemoteProtocolError
from ...core.frames import SEQUENCED, Connect, Frame, Hello, Resume, Rx
from ...core.peer import ClientPeer
from .liveness import HalfOpenWatch
from .pacer import Pacer
from .proxies import ProxyOption
from .wire import Negotiated, encode_bodies, error_code, split_at_close

__all__ = ["ClientTransport", "TransportClosed"]

log = logging.getLogger("anywire.client")

# Failures of the network or of the peer that end a transport (and call for a reconnect),
# as opposed to bugs, which must surface.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, httpx.HTTPError, RemoteProtocolError)

# POSTs left to finish after their transport ended (see ClientTransport.abort): held here
# so that nothing but their own end (answer, error or request timeout) collects them.
_LATE: set[asyncio.Task[None]] = set()


class TransportClosed(Exception):
    """The transport ended. ``code`` is the close code the server gave, if any; ``why``
    classifies a failure to open for the server's metrics (negotiate's ``failures``)."""

    def __init__(self, code: int | None = None, reason: str = "", why: str = "closed") -> None:
        super().__init__(f"transport closed ({code}): {reason}" if code else reason)
        self.code = code
        self.reason = reason
        self.why = why


class ClientTransport:
    """Base class: subclasses implement :meth:`_connect` and :meth:`_write`."""

    name: ClassVar[str] = "?"
    #: Whether the client acknowledges with ``rx`` frames on this transport (long-poll
    #: acknowledges in its poll requests instead).
    sends_rx: ClassVar[bool] = True
    #: Whether a successful write means the server has processed what it carried (an
    #: upstream POST answered 204 does; a WebSocket send only reached a buffer).
    write_confirms: ClassVar[bool] = False
    #: What every write (and poll) waits on to stay within the server's flood budget;
    #: the client sets its own (kept across connections).
    pacer: Pacer = Pacer(enabled=False)
    #: The client's ``proxy`` option (for the WebSocket; httpx has it already).
    proxy: ProxyOption = None
    #: The client's ``ws_deflate`` option (offer permessage-deflate on the WebSocket).
    deflate: bool = False

    def __init__(
        self,
        base_url: str,
        path: str,
        neg: Negotiated,
        codec: Codec,
        codecs: Mapping[str, Codec],
        http: httpx.AsyncClient,
        headers: Mapping[str, str],
    ) -> None:
        self.base_url = base_url
        self.path = path
        self.neg = neg
        self.codec = codec
        self.codecs = codecs
        self.http = http
        self.headers = dict(headers)
        self.closed = False
        self._inbox: asyncio.Queue[list[Frame] | TransportClosed] = asyncio.Queue()
        self._pending: list[Frame] = []  # frames that came with the hello
        self._outbox: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing waits to be written
        self._idle.set()
        self._ended = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Silence for ping_timeout after a send the server must answer: half-open, dead.
        self._watch = HalfOpenWatch(neg.ping_timeout, self._half_open)
        # Idle time when the network ended the connection (None: the client dropped it,
        # or it has not ended), for adaptive heartbeats (liveness.IdleCuts).
        self.last_traffic = asyncio.get_running_loop().time()
        self.received_bytes = 0
        """Bytes of the messages received so far (the receipt rule's byte limit)."""
        self.idle_at_end: float | None = None
        self._dropped = False
        self._posting: asyncio.Task[None] | None = None  # the sender, while a POST is out
        # Where answered POSTs confirm their frames (confirm_into): the peer, its
        # numbering when the transport was attached, and the event set when room frees.
        self._receipts: tuple[ClientPeer, int, asyncio.Event] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self, first: Connect | Resume) -> Hello:
        """Open the connection with ``first`` and return the server's hello.

        Unbounded on its own: the client wraps it in its connect timeout. Raises
        :class:`TransportClosed` (with the server's code, if it gave one) or a network
        error if the transport cannot be used.
        """
        await self._connect(first)
        return await self._hello()

    async def _hello(self) -> Hello:
        """Once the first frame is sent (:meth:`_connect`): start sending and return the
        server's hello."""
        self._spawn(self._sender())
        items = await self.recv()
        hello = items[0]
        if not isinstance(hello, Hello):
            raise TransportClosed(None, f"expected hello, got {hello.type}")
        self._pending = items[1:]
        return hello

    async def _connect(self, first: Connect | Resume) -> None:
        """Open the connection, send ``first`` and start delivering frames."""
        raise NotImplementedError

    def silence_limit(self) -> float:
        """How long the server may stay silent before the connection is presumed dead."""
        # The server pings every ping_interval; missing one by ping_timeout means dead.
        return self.neg.ping_interval + self.neg.ping_timeout

    def abort(self) -> None:
        """Drop the connection at once, telling the server nothing (as a network failure
        would). Frames already received can still be read; then recv raises.

        A POST in flight is not cancelled: the server may have processed its frames
        already (e.g. when its graceful 4000 ended the downstream meanwhile), and only
        its answer can say so. It finishes on its own, bounded by its request timeout;
        its answer confirms its frames (:meth:`confirm_into`); nothing more is sent."""
        self._dropped = True
        self._end(TransportClosed(None, "connection dropped"))
        self._watch.stop()
        for task in self._tasks:
            if task is self._posting:
                _LATE.add(task)
                task.add_done_callback(_LATE.discard)
            else:
                task.cancel()

    def _half_open(self, reason: str) -> None:
        self._dropped = True
        self._end(TransportClosed(None, reason))
        self.abort()

    async def close(self) -> None:
        """Stop every task of the transport and release its connection (bounded); a POST
        in flight finishes on its own (:meth:`abort`), without delaying this."""
        self.abort()
        tasks = [t for t in self._tasks if t is not self._posting]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    def confirm_into(self, peer: ClientPeer, room: asyncio.Event) -> None:
        """From now on, a POST answered 2xx confirms its frames in ``peer`` (the server
        processed them before answering, protocol 8.5) and sets ``room`` if that freed
        room, also after this transport ended (a late answer is as good a receipt), as
        long as the peer's numbering is the one of now: once a hello with ``recovered:
        false`` has renumbered the frames, a receipt about the old numbering is dropped.
        Without this, answers become ``rx`` frames in :meth:`recv` (while open only)."""
        self._receipts = (peer, peer.numbering, room)

    # -- receiving -----------------------------------------------------------------------
    async def recv(self) -> list[Frame]:
        """The next frames, in order. Raises :class:`TransportClosed` when the connection
        has ended and everything received before the end has been returned."""
        if self._pending:
            frames, self._pending = self._pending, []
            return frames
        item = await self._inbox.get()
        if isinstance(item, TransportClosed):
            self._inbox.put_nowait(item)  # every later call raises too
            raise item
        return item

    def _deliver(self, frames: list[Frame], size: int = 0) -> None:
        """Hand decoded frames to :meth:`recv` (``size``: the message's bytes); a close
        frame ends the transport."""
        if self.closed:
            return
        self.received_bytes += size
        self._heard()
        if not frames:
            return
        frames, close = split_at_close(frames)
        self._inbox.put_nowait(frames)
        if close is not None:
            self._end(TransportClosed(close.c, close.m))

    def _alive(self) -> None:
        """Report a sign of life that carried no frame (an empty long-poll answer), so
        the client's silence timer restarts."""
        if not self.closed:
            self._heard()
            self._inbox.put_nowait([])

    def _heard(self) -> None:
        self._watch.heard()
        self.last_traffic = asyncio.get_running_loop().time()

    def _end(self, exc: TransportClosed) -> None:
        """Mark the transport as over; the first reason given wins."""
        if not self.closed:
            self.closed = True
            if not self._dropped:
                self.idle_at_end = asyncio.get_running_loop().time() - self.last_traffic
            self._inbox.put_nowait(exc)
            self._idle.set()  # nothing more will be written: flush() must not wait
            self._ended.set()

    # -- sending -------------------------------------------------------------------------
    def send(self, frames: Iterable[Frame]) -> None:
        """Queue ``frames`` to be written after everything queued before them."""
        if self.closed:
            return  # sequenced frames stay in the peer's buffer and are resent later
        before = len(self._outbox)
        self._outbox.extend(frames)
        if len(self._outbox) != before:
            self._idle.clear()
            self._wake.set()

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until every queued frame has been written."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    async def wait_ended(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the connection to end, e.g. for the
        server to hang up after a ``close`` frame."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ended.wait()

    async def _sender(self) -> None:
        # One task writes everything, so frames leave in the order they were queued and
        # at most one write (one POST) is in flight at a time.
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox and not self.closed:
                    frames = list(self._outbox)
                    self._outbox.clear()
                    # No message may cost more than the pacer holds (protocol 13.4).
                    max_batch = min(self.neg.max_batch, self.pacer.max_cost())
                    costs: list[int] = []
                    bodies = encode_bodies(
                        self.codec, frames, max_batch, self.neg.max_frame_size, costs
                    )
                    first = 0
                    for body, cost in zip(bodies, costs, strict=True):
                        await self.pacer.take(cost)
                        if self.closed:
                            return
                        # Armed when the write starts (a paced wait is not silence), and
                        # before it: a write into a black hole may never return.
                        self._watch.sent(frames)
                        self.last_traffic = asyncio.get_running_loop().time()
                        if self.write_confirms:
                            self._posting = asyncio.current_task()  # abort() spares it
                        try:
                            await self._write(body)
                        finally:
                            self._posting = None
                        if self.write_confirms:
                            self._heard()  # the POST was answered: the path works
                            self._confirm_written(frames[first : first + cost])
                        first += cost
                        if self.closed:
                            return
                if not self._outbox:
                    self._idle.set()
        except TransportClosed as exc:
            self._end(exc)
        except NETWORK_ERRORS as exc:
            self._end(TransportClosed(None, f"send failed: {exc!r}"))
        except Exception as exc:
            # A bug (e.g. a frame that cannot be encoded slipped through): end this
            # connection rather than leave a transport that silently sends nothing.
            log.exception("anywire %s sender failed", self.name)
            self._end(TransportClosed(None, f"sender crashed: {exc!r}"))

    def _confirm_written(self, frames: Sequence[Frame]) -> None:
        # The server processed every frame of an accepted POST before answering (protocol
        # 8.5): confirm them now, as an rx would, rather than wait for the downstream's
        # (which never comes if the downstream ended meanwhile). Otherwise a session lost
        # right after the POST (a restart) would have them sent again: processed twice.
        last = max((f.s for f in frames if f.type in SEQUENCED), default=None)  # type: ignore[union-attr]
        if last is None:
            return
        if self._receipts is None:
            if not self.closed:
                self._inbox.put_nowait([Rx(last)])
            return
        peer, numbering, room = self._receipts
        if peer.confirm_in(numbering, last) and peer.has_room():
            room.set()

    async def _write(self, body: bytes) -> None:
        """Write one encoded message or batch."""
        raise NotImplementedError

    async def _post(self, body: bytes) -> None:
        """``POST /send`` for the HTTP transports; an error status ends the transport."""
        response = await self.http.post(
            self.base_url + self.neg.send_url,
            content=body,
            headers={
                **self.headers,
                "Content-Type": self.codec.content_type,
                "X-Anywire-Token": self.neg.token,
            },
        )
        if response.status_code >= 300:
            raise self._refused(response, "send")

    # -- helpers -------------------------------------------------------------------------
    def _refused(self, response: httpx.Response, what: str) -> TransportClosed:
        """:func:`refused`; a flood refusal's ``Retry-After`` is left to the pacer, so
        the next send or resume waits it out."""
        closed = refused(response, what)
        if closed.code == CloseCode.FLOOD:
            try:
                self.pacer.spent(float(response.headers.get("retry-after", "0")))
            except ValueError:
                self.pacer.spent()
        return closed

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"anywire-{self.name}"))


def refused(response: httpx.Response, what: str) -> TransportClosed:
    """The TransportClosed for an HTTP error answer, with the close code from its body.

    anywire's errors carry their code in the body. 410 without one still means the
    session is unknown or gone: renegotiate (4007). Any other status without a code
    comes from something else on the way (a proxy, a restart): no code, so the client
    falls back or reconnects rather than giving up.
    """
    status = response.status_code
    code = error_code(response.content, response.headers.get("content-type", ""))
    if code is None and status == 410:
        code = CloseCode.SESSION_UNKNOWN
    return TransportClosed(code, f"{what} refused: HTTP {status}")
