"""What the session host does with the frames a client sends (a base class of
:class:`~anywire.server.host.SessionHost`).

The transports hand every client message to :meth:`Inbound.feed` (or, for the
request/response hot path, to :meth:`Inbound.answer`, which returns the answer ready to
write). Here each frame is charged to the flood budget, accounted by the session
(sequence, receipts), and dispatched: events to the application's handlers (a plain
function inline, anything else in a task of the session), acks of server calls, joins
and leaves, an in-band refresh, a close. Handlers' results go back as sequenced acks
(:meth:`Inbound.reply`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..core.closecodes import CloseCode
from ..core.codec import Outgoing
from ..core.errors import ProtocolError, RemoteProtocolError
from ..core.frames import Ack, Close, Event, Frame, Join, Leave
from ..core.session import ServerSession, SessionState
from ..transports.base import Link
from .budget import Budget
from .outgoing import ack_frame, body

if TYPE_CHECKING:
    import asyncio

    from .app import Anywire
    from .calls import Calls
    from .joins import Joins
    from .refresh import Refresher
    from .socket import Socket

__all__ = ["Inbound"]

log = logging.getLogger("anywire")

# Bound once: each SessionState.X is a metaclass lookup on Python 3.11.
_CLOSED = SessionState.CLOSED

# _call_plain()'s "the outcome is left to the session" (None is a handler's result).
_PENDING: Any = object()

# Handler results that are certainly not awaitable: skips inspect's ABC checks per event.
_PLAIN = frozenset({type(None), dict, list, str, int, float, bool, bytes})


class Inbound(Budget):
    """The inbound methods of the host's :class:`Host` protocol: ``feed``, ``answer``,
    and the dispatch of client frames to handlers."""

    app: Anywire
    closing: bool  # SessionHost's: the node is draining (shutdown())
    sockets: dict[str, Socket]
    tasks: dict[str, set[asyncio.Task[Any]]]
    calls: Calls
    joins: Joins
    refresher: Refresher
    # Delivery's (an annotation, not a stub: a stub here would shadow it in the MRO).
    push: Callable[[ServerSession, Outgoing], None]

    # SessionHost's (the session's life and the delivery of frames):
    def _session(self, sid: str) -> ServerSession:
        raise NotImplementedError

    def _wake(self, sess: ServerSession) -> None:
        raise NotImplementedError

    def spawn(self, coro: Awaitable[Any], sid: str | None = None) -> None:
        raise NotImplementedError

    def close_session(self, sess: ServerSession, code: int, reason: str) -> None:
        raise NotImplementedError

    def feed(self, sid: str, frames: list[Frame], size: int = 0) -> None:
        sess = self.sessions.get(sid) or self._session(sid)
        now = self._clock()
        self.refresher.guard(sess, now)  # an expired credential runs nothing
        link = sess.connection
        if self.closing and (not isinstance(link, Link) or link.closing is not None):
            # The drain told this session to move (4000, with a receipt for everything
            # processed before it), or it is between connections and ends with the
            # drain: what it sends now is refused, not processed, so the client keeps it
            # and sends it once more to its next session. Processed here, it would be
            # processed twice whenever the answer (a POST's 204) did not reach the
            # client before the node went (protocol 6.7).
            raise ProtocolError("server shutting down", CloseCode.SHUTDOWN)
        if isinstance(link, Link):  # frames per transport (metrics)
            link.traffic.frames_in += len(frames)
            link.traffic.bytes_in += size
        try:
            # The whole message is paid for first, one token a frame and at least one
            # (an empty batch does nothing but must not be free): a flood refuses all
            # of it, never half, so the client resends it whole.
            sess.charge(now, len(frames) or 1)
            for frame in frames:
                handled = sess.receive(frame, now)
                if handled is not None:
                    self._dispatch(sess, handled)
                if sess.state is _CLOSED:
                    break
        except RemoteProtocolError as exc:
            self._peer_error(sess, exc)
            raise
        finally:
            self._wake_for_control(sess)

    def receipt(self, sid: str, n: int, size: int = 0) -> None:
        """:meth:`feed` of one ``Rx(n)``, the message a client sends most under a stream
        (``Codec.decode_rx`` read it), without the frame and the general loop: the same
        checks in the same order (the credential's expiry, the flood budget's token, ``n``
        not above what was sent: 4502) and the same accounting. No wake-up: a receipt
        changes neither the session's control frames nor what its own receipt covers,
        so what ``feed`` would wake the writer for after it was there, and woken, before.
        Nor does a draining node refuse it, as ``feed`` refuses frames after the close: a
        receipt only lets the node forget frames the client has, so taking it can never
        have the client send anything twice."""
        sess = self.sessions.get(sid) or self._session(sid)
        now = self._clock()
        deadline = sess.auth_deadline
        if deadline is not None and now >= deadline:
            self.refresher.expired(sess)  # raises (refresher.guard() inlined)
        link = sess.connection
        if isinstance(link, Link):  # frames per transport (metrics)
            traffic = link.traffic
            traffic.frames_in += 1
            traffic.bytes_in += size
        try:
            sess.charge(now)
            sess.last_seen = now  # (what receive() does for any frame)
            sess.acknowledge(n)
        except RemoteProtocolError as exc:
            self._peer_error(sess, exc)
            self._wake_for_control(sess)  # (feed's finally: nothing new, but as it does)
            raise

    async def settled(self, sid: str) -> None:
        await self.calls.relayed(sid)

    def answer(self, link: Link, frame: Frame) -> bytes | None:
        """Handle one client frame and return the encoded message that answers it, when
        that can be done at once: an event with an ack id whose handler is a plain
        function returning a plain value, on the session's live connection, with nothing
        else waiting to be written. The message is what :meth:`outgoing` would give
        after :meth:`feed` (the receipt, then the ack), built without the wake-ups and
        lists in between; the caller writes it. This is the request/response hot path.

        Returns None without touching anything when the frame does not qualify (the
        caller feeds it), and ``b""`` when it was handled but its outcome (an error ack,
        an awaitable result, a duplicate) is pending in the session the usual way.
        """
        if type(frame) is not Event or frame.id is None or link.sid is None:
            return None
        sess = self.sessions.get(link.sid)
        if (
            sess is None
            or sess.connection is not link
            or link.queued
            or link.closing is not None
            or sess.control
            or sess.written != sess.out_seq
            or (sess.auth_deadline is not None and self._clock() >= sess.auth_deadline)
        ):  # (an expired credential: feed() refuses it)
            return None
        handler = self.app.plain_handlers.get((sess.namespace, frame.e))
        if handler is None or sess.sid in self.tasks:
            return None
        traffic = link.traffic
        traffic.frames_in += 1
        try:
            now = self._clock()
            sess.charge(now)
            handled = sess.receive(frame, now)
        except RemoteProtocolError as exc:
            self._peer_error(sess, exc)
            raise
        result = _PENDING  # a duplicate: nothing to run
        if handled is not None:
            result = self._call_plain(sess, self.sockets[sess.sid], handler, frame)
        if result is _PENDING:
            self._wake_for_control(sess)
            return b""
        out = ack_frame(frame.id, True, result)
        codec = link.codec
        encoded = body(out, codec)  # first: the outbox counts the frame at its size
        # Nothing was pending, so this push cannot overflow past what the connection was
        # given (push()'s slow-consumer check) and the connection takes it at once.
        seq = sess.written = sess.push(out)
        _, receipt = sess.take_output_control()  # control is empty (checked above)
        traffic.frames_out += 1 if receipt is None else 2
        return codec.reply(receipt, seq, encoded)

    def _wake_for_control(self, sess: ServerSession) -> None:
        # Sequenced frames woke the writer when pushed (push()); what the session
        # produced on its own (a pong, an rx owed on its own) has not.
        if sess.control or sess.rx_due():
            self._wake(sess)

    def _dispatch(self, sess: ServerSession, frame: Frame) -> None:
        socket = self.sockets[sess.sid]
        if isinstance(frame, Event):
            self._on_event(sess, socket, frame)
        elif isinstance(frame, Close):
            # The client is leaving for good: no resume window to wait out.
            self.close_session(sess, CloseCode.NORMAL, "closed by client")
        elif isinstance(frame, Ack):
            self.calls.answered(sess, frame)
        elif isinstance(frame, Join):
            self.spawn(self.joins.on_join(sess, socket, frame), sess.sid)
        elif isinstance(frame, Leave):
            self.joins.on_leave(sess, frame)
        else:
            self.refresher.dispatch(sess, frame)  # auth (in-band refresh)

    def _on_event(self, sess: ServerSession, socket: Socket, frame: Event) -> None:
        handler = self.app.plain_handlers.get((sess.namespace, frame.e))
        if handler is None or sess.sid in self.tasks:
            # async def, unknown, or behind something of this session still in flight.
            self.spawn(self._handle_event(sess, socket, frame), sess.sid)
            return
        # A plain function while nothing of this session is in flight: call it now. That
        # saves a task per event (the echo hot path) and keeps the order, since nothing
        # received earlier is still running.
        result = self._call_plain(sess, socket, handler, frame)
        if result is not _PENDING and frame.id is not None:
            self.reply(sess, frame.id, True, result)

    def _call_plain(self, sess: ServerSession, socket: Socket, handler: Any, frame: Event) -> Any:
        """Call a plain-function handler inline. Returns its result, or ``_PENDING`` when
        the outcome is left to the session: an error ack (it raised) or a task awaiting
        what it returned."""
        try:
            result = handler(socket, frame.d)
        except Exception as exc:
            self._handler_failed(sess, frame, exc)
            return _PENDING
        if type(result) not in _PLAIN and inspect.isawaitable(result):
            self.spawn(self._finish_event(sess, frame, result), sess.sid)
            return _PENDING
        return result

    async def _handle_event(self, sess: ServerSession, socket: Socket, frame: Event) -> None:
        handler = self.app.handler(sess.namespace, frame.e)
        if handler is None:
            if frame.id is not None:
                self.reply(sess, frame.id, False, None, "no_handler", f"no handler for {frame.e!r}")
            return
        try:
            result = handler(socket, frame.d)
        except Exception as exc:
            self._handler_failed(sess, frame, exc)
            return
        await self._finish_event(sess, frame, result)

    async def _finish_event(self, sess: ServerSession, frame: Event, result: Any) -> None:
        try:
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            self._handler_failed(sess, frame, exc)
            return
        if frame.id is not None:
            self.reply(sess, frame.id, True, result)

    def _handler_failed(self, sess: ServerSession, frame: Event, exc: Exception) -> None:
        # A handler's failure is the caller's error ack, never a dead connection.
        if frame.id is not None:
            self.reply(sess, frame.id, False, None, "handler_error", str(exc) or type(exc).__name__)
        else:
            log.exception("handler for %r failed", frame.e, exc_info=exc)

    def reply(
        self,
        sess: ServerSession,
        ack_id: int,
        ok: bool,
        data: Any,
        code: str = "",
        message: str = "",
    ) -> None:
        """Answer the client's request ``ack_id`` (a sequenced ``ack``)."""
        if sess.state is _CLOSED:
            return
        # Not encoded here: the writer encodes it for the codec of the connection that
        # carries it, once (outgoing.body), and turns a result that codec cannot carry
        # into an error ack with the same id.
        self.push(sess, ack_frame(ack_id, ok, data, code, message))
