"""The session host: owns the sessions of this node and glues the core to asyncio.

It implements the transports' :class:`~anywire.transports.base.Host` protocol (attach,
feed, outgoing, detach), runs the one timer task that advances every session's clock,
dispatches client frames to the application's handlers, and delivers broker envelopes to
local sessions (encoding each broadcast once per codec).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..core.auth import Identity
from ..core.closecodes import CloseCode, should_reconnect
from ..core.codec import Codec, Outgoing
from ..core.errors import AuthError, ProtocolError, RemoteProtocolError
from ..core.frames import Ack, Close, Connect, Event, Frame, Join, Leave, Resume, Rx
from ..core.rooms import Member, Rooms
from ..core.session import Heartbeat, ServerSession, SessionState
from ..core.settings import Settings
from ..core.streams import room_stream, user_stream
from ..core.tickets import Signer, TicketBook
from ..transports.base import Link, Scope, header, short_reason
from .broker import Broker, Envelope
from .codecs import make_codecs
from .errors import AckError, AckTimeout, Disconnected, Reject

if TYPE_CHECKING:
    from .app import Anywire
    from .cluster import Cluster
    from .socket import Socket

__all__ = ["SessionHost"]

log = logging.getLogger("anywire")

# The states tested per message, bound once (each SessionState.X is a metaclass lookup
# on Python 3.11).
_ATTACHED = SessionState.ATTACHED
_CLOSED = SessionState.CLOSED


class SessionHost:
    """All sessions of one node."""

    def __init__(
        self,
        app: Anywire,
        settings: Settings,
        broker: Broker,
        secret: bytes,
        node_id: str,
        tick: float = 0.25,
    ) -> None:
        self.app = app
        self.settings = settings
        self.broker = broker
        self.node_id = node_id
        self.tick = tick
        self.codecs = make_codecs(max(settings.max_frame_size, 1024) * 4)
        self.signer = Signer(secret)
        self.tickets = TicketBook()
        self.sessions: dict[str, ServerSession] = {}
        self.sockets: dict[str, Socket] = {}
        self.rooms = Rooms()
        self.users: dict[tuple[str, str], set[str]] = {}
        self.tasks: dict[str, set[asyncio.Task[Any]]] = {}
        self.acks: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._identities: dict[str, tuple[Identity, float]] = {}
        # Sessions ended with a terminal code, remembered for a resume window so a late
        # poll or POST learns the real reason instead of "unknown session".
        self._tombstones: dict[str, tuple[int, str, float]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.cluster: Cluster | None = None
        """Set when nodes share a Redis broker: owner registry, presence, tickets."""
        self._clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()
        self.closing = False
        self.counters: dict[str, int] = {
            "connections": 0,
            "frames_in": 0,
            "frames_out": 0,
            "errors": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the broker and the timer task."""
        self.closing = False
        # The loop's clock, bound once: asyncio.get_running_loop() costs a getpid()
        # system call per call on Python 3.11, and feed() runs for every client message.
        self._clock = asyncio.get_running_loop().time
        await self.broker.start(self.deliver)
        self._timer = asyncio.create_task(self._run_timers(), name="anywire-timers")

    async def shutdown(self, grace: float = 2.0) -> None:
        """Tell every client to reconnect (4000), end streams and polls, stop timers."""
        self.closing = True
        if self.cluster is not None:
            self.cluster.broker.abort_requests("server shutting down")  # forwarded polls
        for sess in list(self.sessions.values()):
            link = sess.connection
            if isinstance(link, Link):
                link.close(CloseCode.SHUTDOWN, "server shutting down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(
            s.state is SessionState.ATTACHED for s in self.sessions.values()
        ):
            await asyncio.sleep(0.05)
        for sess in list(self.sessions.values()):
            self._expire(sess, run_hooks=True)
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        if self._background:
            await asyncio.wait(self._background, timeout=grace)
        if self.cluster is not None:
            await self.cluster.drain(grace)  # presence removals, owner records
        await self.broker.stop()

    # -- negotiate ------------------------------------------------------------------------
    def issue(
        self,
        identity: Identity,
        namespace: str,
        codec: str,
        resume: str | None,
        user_since: tuple[str, int] | None = None,
    ) -> tuple[str, str, str, bool]:
        """Decide the session for a negotiate call: (sid, session token, ticket, resumable).

        A resume token is honoured when its session is still here and belongs to the same
        user; otherwise a new session id is issued.
        """
        sid, resumable = None, False
        if resume:
            with contextlib.suppress(ProtocolError):
                old = self.signer.verify(resume, "s")
                sess = self.sessions.get(str(old.get("sid")))
                same_user = sess is not None and (
                    sess.user == identity.user
                    # Anonymous callers get a new guest id per negotiate: the signed
                    # session token is their only identity, so it is enough here.
                    or (identity.claims.get("anonymous") is True and sess.anonymous)
                )
                if sess is not None and same_user and sess.namespace == namespace:
                    sid, resumable = sess.sid, True
        if sid is None:
            sid = secrets.token_urlsafe(12)
        wall = time.time()
        nonce = secrets.token_urlsafe(12)
        expires = wall + self.settings.ticket_ttl
        fields: dict[str, Any] = {
            "k": "t", "sid": sid, "ns": namespace, "c": codec, "n": nonce, "exp": expires
        }
        if user_since is not None:
            fields["us"] = list(user_since)
        if self.cluster is not None:
            # Any node may redeem the ticket (round-robin): it carries the identity.
            fields["id"] = [identity.user, identity.expires_at, identity.claims]
        ticket = self.signer.sign(fields)
        token = self.signer.sign({"k": "s", "sid": sid, "node": self.node_id})
        self._identities[nonce] = (identity, expires)
        return sid, token, ticket, resumable

    # -- Host protocol (transports) -----------------------------------------------------------
    def codec(self, name: str) -> Codec:
        try:
            return self.codecs[name]
        except KeyError:
            raise RemoteProtocolError(f"unknown codec {name!r}") from None

    def check_origin(self, scope: Scope) -> bool:
        return self.app.origin_allowed(scope)

    def cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        return self.app.cors_headers(scope)

    def ticket_codec(self, ticket: str) -> str:
        return str(self.signer.verify(ticket, "t", time.time()).get("c", "json"))

    async def attach(self, link: Link, first: Connect | Resume) -> None:
        if self.closing:
            raise ProtocolError("server shutting down", CloseCode.SHUTDOWN)
        wall = time.time()
        payload = self.signer.verify(first.ticket, "t", wall)
        nonce = str(payload["n"])
        self.tickets.redeem(nonce, float(payload["exp"]), wall)
        entry = self._identities.pop(nonce, None)
        if self.cluster is not None:
            await self.cluster.redeem(nonce, float(payload["exp"]) - wall)
        if entry is not None:
            identity = entry[0]
        elif self.cluster is not None and isinstance(payload.get("id"), list):
            user, expires_at, claims = payload["id"]
            identity = Identity(user, expires_at, claims)
        else:
            raise AuthError("ticket unknown on this node", CloseCode.SESSION_UNKNOWN)
        if identity.expires_at is not None and identity.expires_at <= wall:
            raise AuthError("token expired", CloseCode.TOKEN_EXPIRED)
        sid, namespace = str(payload["sid"]), str(payload["ns"])
        now = asyncio.get_running_loop().time()
        auth_deadline = None if identity.expires_at is None else now + identity.expires_at - wall
        heartbeat = self._heartbeat(link)
        sess = self.sessions.get(sid)
        last = first.last if isinstance(first, Resume) else None
        if sess is not None and last is not None and sess.can_resume(last):
            old = sess.connection
            sess.auth_deadline = auth_deadline
            hello = sess.attach(link, now, heartbeat, last)
            if isinstance(old, Link) and old is not link:
                old.close(CloseCode.TRANSPORT_REPLACED, "replaced by a newer connection")
        else:
            missed: list[Envelope] | None = None
            user_pos = _pos(payload.get("us"))
            ustream = None if identity.user is None else user_stream(namespace, identity.user)
            if ustream is not None and user_pos is not None:
                # The session is new: replay the user's personal stream from the position
                # the client holds, the way join(since=) does for rooms.
                with contextlib.suppress(ConnectionError):  # Redis down: not recovered
                    missed = await self._history_until_now(ustream, user_pos[0], user_pos[1])
            sess = self.sessions.get(sid)
            if sess is not None:
                self._expire(sess, run_hooks=True)
            sess = ServerSession(sid, identity.user, namespace, self.settings, now, auth_deadline)
            sess.anonymous = identity.claims.get("anonymous") is True
            socket = self.app.make_socket(self, sess, identity)
            self.sessions[sid] = sess
            self.sockets[sid] = socket
            if identity.user is not None:
                self.users.setdefault((namespace, identity.user), set()).add(sid)
            if ustream is not None and user_pos is not None:
                for env in missed or ():
                    self.push(sess, _event_frame(env))
                if missed is None:
                    self.push(sess, _lost_frame(ustream, user_pos))
            try:
                await self.app.run_connect_hooks(socket)
            except Reject as exc:
                self._expire(sess, run_hooks=False)
                raise ProtocolError(exc.message, CloseCode.FORBIDDEN) from exc
            hello = sess.attach(link, now, heartbeat, None)
        link.sid = sid
        if self.cluster is not None:
            # Registered before the hello: once the client knows its session, every node
            # can find the owner (calls, forwarded requests).
            await self.cluster.attached(sid)
        self.counters["connections"] += 1
        link.push(link.codec.encode(hello.to_wire()))

    def resolve(self, token: str) -> str:
        payload = self.signer.verify(token, "s")
        return self._session(str(payload.get("sid"))).sid

    def _session(self, sid: str) -> ServerSession:
        """The live session ``sid``; raises with the code it ended with if it was closed
        for good lately, else 4007 SESSION_UNKNOWN."""
        sess = self.sessions.get(sid)
        if sess is not None:
            return sess
        tomb = self._tombstones.get(sid)
        if tomb is not None:
            raise ProtocolError(tomb[1], tomb[0])
        raise AuthError("session unknown or expired", CloseCode.SESSION_UNKNOWN)

    def feed(self, sid: str, frames: list[Frame]) -> None:
        sess = self.sessions.get(sid) or self._session(sid)
        now = self._clock()
        self.counters["frames_in"] += len(frames)
        try:
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
        ):
            return None
        handler = self.app.plain_handlers.get((sess.namespace, frame.e))
        if handler is None or sess.sid in self.tasks:
            return None
        counters = self.counters
        counters["frames_in"] += 1
        try:
            handled = sess.receive(frame, self._clock())
        except RemoteProtocolError as exc:
            self._peer_error(sess, exc)
            raise
        result = _PENDING  # a duplicate: nothing to run
        if handled is not None:
            result = self._call_plain(sess, self.sockets[sess.sid], handler, frame)
        if result is _PENDING:
            self._wake_for_control(sess)
            return b""
        out = _ack(frame.id, True, result)
        # Nothing was pending, so this push cannot overflow past what the connection was
        # given (push()'s slow-consumer check) and the connection takes it at once.
        seq = sess.push(out)
        sess.written = seq
        codec = link.codec
        _, receipt = sess.take_output_control()  # control is empty (checked above)
        counters["frames_out"] += 1 if receipt is None else 2
        return codec.reply(receipt, seq, _body(out, codec))

    def _wake_for_control(self, sess: ServerSession) -> None:
        # Sequenced frames woke the writer when pushed (push()); what the session
        # produced on its own (a pong, an rx owed on its own) has not.
        if sess.control or sess.rx_due():
            self._wake(sess)

    def reject(self, sid: str, error: RemoteProtocolError) -> None:
        """A client frame was invalid. If it carried its sequence number, count it as
        consumed (the frames after it still flow) and answer its ack id with an error."""
        sess = self.sessions.get(sid)
        if sess is None:
            return
        try:
            # Invalid frames cost flood tokens like valid ones.
            sess.charge(asyncio.get_running_loop().time())
        except RemoteProtocolError as exc:
            self._peer_error(sess, exc)
            raise
        if error.seq is None or not sess.skip(error.seq):
            return
        if error.ack_id is not None:
            self._reply(sess, error.ack_id, False, None, "bad_request", error.message)

    def _peer_error(self, sess: ServerSession, exc: RemoteProtocolError) -> None:
        """Count a client's protocol error; a flood ends the session (4506)."""
        self.counters["errors"] += 1
        if exc.code == CloseCode.FLOOD:
            self.close_session(sess, CloseCode.FLOOD, exc.message)

    def outgoing(self, link: Link, limit: int | None = None) -> list[bytes]:
        out = link.queued
        link.queued = []
        sess = self.sessions.get(link.sid) if link.sid is not None else None
        codec = link.codec
        if sess is not None and sess.connection is link:
            control, receipt = sess.take_output_control()
            for frame in control:
                if type(frame) is Rx:
                    out.append(codec.rx(frame.n))
                else:
                    out.append(codec.encode(frame.to_wire()))
            if receipt is not None:
                out.append(codec.rx(receipt))
            for seq, item in sess.take_pending(limit):
                out.append(codec.frame(item.type, seq, _body(item, codec)))
        if link.closing is not None:
            code, reason = link.closing
            out.append(codec.encode(Close(code, reason).to_wire()))
        self.counters["frames_out"] += len(out)
        return out

    def has_pending(self, link: Link) -> bool:
        if link.queued or link.closing is not None:
            return True
        sess = self.sessions.get(link.sid) if link.sid is not None else None
        return sess is not None and sess.connection is link and sess.has_output()

    def poll_started(self, sid: str, ack: int | None) -> Link:
        sess = self._session(sid)
        link = sess.connection
        if not isinstance(link, Link) or link.info.name != "longpoll":
            code, reason = sess.last_close or (CloseCode.POLL_TIMEOUT, "not polling: resume")
            raise ProtocolError(reason, code)
        if ack is not None:
            sess.rewind(ack)
        sess.touch(asyncio.get_running_loop().time())
        return link

    def detach(self, link: Link) -> None:
        sess = self.sessions.get(link.sid) if link.sid is not None else None
        if sess is None:
            return
        if sess.detach(link, asyncio.get_running_loop().time()):
            closing = link.closing
            if closing is not None and not should_reconnect(closing[0]):
                self._bury(sess, *closing)

    # -- sessions -------------------------------------------------------------------------
    def _heartbeat(self, link: Link) -> Heartbeat:
        s = self.settings
        if link.info.server_ping:
            return Heartbeat(s.ping_interval, s.ping_interval + s.ping_timeout)
        return Heartbeat(None, s.poll_window + s.ping_timeout)

    def close_session(self, sess: ServerSession, code: int, reason: str) -> None:
        """End the live connection with ``code``; a terminal code also ends the session."""
        link = sess.connection
        sess.last_close = (code, reason)
        if isinstance(link, Link):
            link.close(code, reason)
            if link.info.name == "longpoll":
                # No request may be held to carry the close: the next poll learns it (410).
                sess.detach(link, asyncio.get_running_loop().time())
        if not should_reconnect(code):
            self._bury(sess, code, reason)

    def end_session(self, sess: ServerSession, reason: str) -> None:
        """End ``sess`` now (its client moved to a session on another node)."""
        link = sess.connection
        if isinstance(link, Link):
            link.close(CloseCode.TRANSPORT_REPLACED, reason)
        self._expire(sess, run_hooks=True)

    def _bury(self, sess: ServerSession, code: int, reason: str) -> None:
        """End the session for good, remembering why for late requests."""
        deadline = asyncio.get_running_loop().time() + self.settings.resume_window
        self._tombstones[sess.sid] = (code, short_reason(reason), deadline)
        self._expire(sess, run_hooks=True)

    def _expire(self, sess: ServerSession, run_hooks: bool) -> None:
        if self.sessions.get(sess.sid) is not sess:
            return
        del self.sessions[sess.sid]
        socket = self.sockets.pop(sess.sid, None)
        if self.cluster is not None:
            self.cluster.ended(sess.sid)
        for ns, room, member in self.rooms.leave_all(sess.sid):
            self._presence(ns, room, "$leave", member)
        if sess.user is not None:
            key = (sess.namespace, sess.user)
            sids = self.users.get(key)
            if sids is not None:
                sids.discard(sess.sid)
                if not sids:
                    del self.users[key]
        for task in self.tasks.pop(sess.sid, set()):
            task.cancel()
        for ack_key in [k for k in self.acks if k[0] == sess.sid]:
            fut = self.acks.pop(ack_key)
            if not fut.done():
                fut.set_exception(Disconnected("session ended"))
        link = sess.connection
        if isinstance(link, Link):
            link.close(CloseCode.NORMAL, "session ended")
        sess.close()
        if run_hooks and socket is not None:
            self._spawn(self.app.run_disconnect_hooks(socket))

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            for sess in list(self.sessions.values()):
                deadline = sess.next_deadline()
                if deadline is None or deadline > now:
                    continue
                for action in sess.poll(now):
                    if action.kind in ("ping", "flush"):
                        self._wake(sess)
                    elif action.kind == "close":
                        self.close_session(sess, action.code, action.reason)
                    elif action.kind == "expire":
                        self._expire(sess, run_hooks=True)
            for sid in [k for k, v in self._tombstones.items() if v[2] <= now]:
                del self._tombstones[sid]
            wall = time.time()
            self.tickets.prune(wall)
            stale = [n for n, (_, exp) in self._identities.items() if exp <= wall]
            for nonce in stale:
                del self._identities[nonce]

    def _wake(self, sess: ServerSession) -> None:
        link = sess.connection
        if isinstance(link, Link):
            link.wake()

    def _spawn(self, coro: Awaitable[Any], sid: str | None = None) -> None:
        task = asyncio.ensure_future(coro)
        bucket = self._background if sid is None else self.tasks.setdefault(sid, set())
        bucket.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            bucket.discard(t)
            if sid is not None and not bucket and self.tasks.get(sid) is bucket:
                del self.tasks[sid]
            if not t.cancelled() and t.exception() is not None:
                log.error("anywire task failed", exc_info=t.exception())

        task.add_done_callback(done)

    # -- dispatch -------------------------------------------------------------------------
    def _dispatch(self, sess: ServerSession, frame: Frame) -> None:
        socket = self.sockets[sess.sid]
        if isinstance(frame, Event):
            self._on_event(sess, socket, frame)
        elif isinstance(frame, Close):
            # The client is leaving for good: no resume window to wait out.
            self.close_session(sess, CloseCode.NORMAL, "closed by client")
        elif isinstance(frame, Ack):
            fut = self.acks.pop((sess.sid, frame.id), None)
            if fut is not None and not fut.done():
                if frame.ok:
                    fut.set_result(frame.d)
                else:
                    err = frame.err or {}
                    fut.set_exception(AckError(err.get("code", "error"), err.get("message", "")))
        elif isinstance(frame, Join):
            self._spawn(self._handle_join(sess, socket, frame), sess.sid)
        elif isinstance(frame, Leave):
            self._handle_leave(sess, frame)

    def _on_event(self, sess: ServerSession, socket: Socket, frame: Event) -> None:
        handler = self.app.plain_handlers.get((sess.namespace, frame.e))
        if handler is None or sess.sid in self.tasks:
            # async def, unknown, or behind something of this session still in flight.
            self._spawn(self._handle_event(sess, socket, frame), sess.sid)
            return
        # A plain function while nothing of this session is in flight: call it now. That
        # saves a task per event (the echo hot path) and keeps the order, since nothing
        # received earlier is still running.
        result = self._call_plain(sess, socket, handler, frame)
        if result is not _PENDING and frame.id is not None:
            self._reply(sess, frame.id, True, result)

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
            self._spawn(self._finish_event(sess, frame, result), sess.sid)
            return _PENDING
        return result

    async def _handle_event(self, sess: ServerSession, socket: Socket, frame: Event) -> None:
        handler = self.app.handler(sess.namespace, frame.e)
        if handler is None:
            if frame.id is not None:
                self._reply(
                    sess, frame.id, False, None, "no_handler", f"no handler for {frame.e!r}"
                )
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
            self._reply(sess, frame.id, True, result)

    def _handler_failed(self, sess: ServerSession, frame: Event, exc: Exception) -> None:
        # A handler's failure is the caller's error ack, never a dead connection.
        if frame.id is not None:
            self._reply(
                sess, frame.id, False, None, "handler_error", str(exc) or type(exc).__name__
            )
        else:
            log.exception("handler for %r failed", frame.e, exc_info=exc)

    async def _handle_join(self, sess: ServerSession, socket: Socket, frame: Join) -> None:
        try:
            allowed = await self.app.authorize_join(socket, frame.r, frame.meta)
        except Reject as exc:
            self._reply(sess, frame.id, False, None, "forbidden", exc.message)
            return
        except Exception as exc:
            self._reply(sess, frame.id, False, None, "handler_error", str(exc))
            return
        if not allowed:
            self._reply(sess, frame.id, False, None, "forbidden", "join refused")
            return
        others: list[dict[str, Any]] = []
        if self.cluster is not None:
            # Members on the other nodes, read before joining (an await after the join
            # could let live events overtake the join's answer).
            others = await self.cluster.members_elsewhere(sess.namespace, frame.r)
        missed: list[Envelope] | None = None
        if frame.since is not None:
            epoch, offset = frame.since
            stream = room_stream(sess.namespace, frame.r)
            try:
                missed = await self._history_until_now(stream, epoch, offset)
            except ConnectionError:
                missed = None  # history unreachable (Redis down): honestly not recovered
        # No await between _history_until_now and joining: nothing published in between
        # can be missed or delivered twice.
        if sess.state is SessionState.CLOSED:
            return
        try:
            members = self.join(sess, frame.r, frame.meta)
            members += [m for m in others if m["sid"] not in {x["sid"] for x in members}]
        except TypeError as exc:  # meta that some codec cannot carry
            self.leave(sess, frame.r)
            self._reply(sess, frame.id, False, None, "bad_request", f"meta not sendable: {exc}")
            return
        answer: dict[str, Any] = {"room": frame.r, "presence": members}
        if frame.since is not None:
            # The join's answer first, then the replay, then live events: the client
            # learns whether the gap was filled before it sees the filler.
            answer["recovered"] = missed is not None
        self._reply(sess, frame.id, True, answer)
        for env in missed or ():
            self.push(sess, _event_frame(env))

    async def _history_until_now(
        self, stream: str, epoch: str, offset: int
    ) -> list[Envelope] | None:
        """The events of ``stream`` after ``offset`` that this node has already delivered
        live, or None if history no longer covers them. The caller subscribes the session
        right after, without an await: later offsets then reach it live, exactly once."""
        for _ in range(5):
            missed = await self.broker.history(stream, epoch, offset)
            if missed is None:
                return None
            top = missed[-1].pos[2] if missed and missed[-1].pos else offset
            here = self.broker.position(stream)
            if here is None:
                # This node has not delivered the stream yet: whatever comes after `top`
                # will reach it live.
                self.broker.seed(stream, epoch, top)
                return missed
            if here[0] != epoch:
                return None
            if here[1] <= top:
                return [e for e in missed if e.pos is not None and e.pos[2] <= here[1]]
            # The node delivered more meanwhile: read again.
        return None

    def _handle_leave(self, sess: ServerSession, frame: Leave) -> None:
        self.leave(sess, frame.r)
        self._reply(sess, frame.id, True, {"room": frame.r})

    def _reply(
        self,
        sess: ServerSession,
        ack_id: int,
        ok: bool,
        data: Any,
        code: str = "",
        message: str = "",
    ) -> None:
        if sess.state is _CLOSED:
            return
        # Not encoded here: the writer encodes it for the codec of the connection that
        # carries it, once (_body), and turns a result that codec cannot carry into an
        # error ack with the same id.
        self.push(sess, _ack(ack_id, ok, data, code, message))

    def encodable(self, out: Outgoing) -> None:
        """Encode ``out`` with every codec now (the bodies are cached for the writers), so
        a value that cannot travel fails here, in the caller, not later in a writer."""
        for codec in self.codecs.values():
            out.body(codec)

    def push(self, sess: ServerSession, out: Outgoing) -> None:
        """Queue a sequenced frame for one session and wake its writer.

        If the outbox overflowed past frames the connection has not even been given, the
        client cannot keep up: its connection is closed with 4002 SLOW_CONSUMER, and its
        resume will report ``recovered: false`` rather than skip frames silently.
        """
        sess.push(out)
        if sess.written < sess.floor - 1 and sess.state is _ATTACHED:
            self.close_session(sess, CloseCode.SLOW_CONSUMER, "client too slow: buffer full")
            return
        self._wake(sess)

    # -- rooms and presence ---------------------------------------------------------------
    def join(self, sess: ServerSession, room: str, meta: Any = None) -> list[dict[str, Any]]:
        """Put the session in ``room``; returns the presence list after joining."""
        member = Member(sess.sid, sess.user, meta)
        if self.rooms.join(sess.namespace, room, member):
            self._presence(sess.namespace, room, "$join", member)
        return [m.to_wire() for m in self.rooms.members(sess.namespace, room)]

    def leave(self, sess: ServerSession, room: str) -> bool:
        """Take the session out of ``room``."""
        member = self.rooms.leave(sess.namespace, room, sess.sid)
        if member is not None:
            self._presence(sess.namespace, room, "$leave", member)
        return member is not None

    def _presence(self, ns: str, room: str, event: str, member: Member) -> None:
        data = {"room": room, **member.to_wire()}
        env = Envelope("room", ns, room, event, data, skip=member.sid)
        self.deliver(env)
        if self.cluster is not None:
            self.cluster.presence(env, member)

    # -- delivery -------------------------------------------------------------------------
    def deliver(self, env: Envelope) -> None:
        """Hand a broker envelope to the local sessions it targets (one encode per codec)."""
        if env.kind == "room":
            targets: Any = self.rooms.sids(env.namespace, env.target or "")
        elif env.kind == "user":
            targets = list(self.users.get((env.namespace, env.target or ""), ()))
        elif env.kind == "session":
            targets = [env.target]
        else:
            targets = [sid for sid, s in self.sessions.items() if s.namespace == env.namespace]
        out = _event_frame(env)
        self.encodable(out)
        for sid in targets:
            if sid == env.skip:
                continue
            sess = self.sessions.get(sid)
            if sess is not None and sess.namespace == env.namespace:
                self.push(sess, out)

    async def call(self, sess: ServerSession, event: str, data: Any, timeout: float | None) -> Any:
        """Send ``event`` to one session and wait for its ack (AckTimeout, AckError)."""
        if sess.state is SessionState.CLOSED:
            raise Disconnected("session ended")
        ack_id = sess.next_ack_id()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        out = Outgoing("event", {"id": ack_id, "e": event, "d": data})
        self.encodable(out)
        self.acks[(sess.sid, ack_id)] = fut
        self.push(sess, out)
        try:
            async with asyncio.timeout(self.settings.ack_timeout if timeout is None else timeout):
                return await fut
        except TimeoutError:
            raise AckTimeout(f"no ack for {event!r}") from None
        finally:
            self.acks.pop((sess.sid, ack_id), None)

    def stats(self) -> dict[str, int]:
        """Live object counts (used by the metrics endpoint and the leak test)."""
        return {
            "sessions": len(self.sessions),
            "sockets": len(self.sockets),
            "rooms": len(self.rooms),
            "room_entries": self.rooms.entry_count(),
            "users": len(self.users),
            "session_tasks": sum(len(t) for t in self.tasks.values()),
            "background_tasks": len(self._background),
            "pending_acks": len(self.acks),
            "pending_tickets": len(self._identities),
            "tombstones": len(self._tombstones),
            "asyncio_tasks": len(asyncio.all_tasks()),
            **self.counters,
        }


def _event_frame(env: Envelope) -> Outgoing:
    """The event frame an envelope becomes (shared by every recipient)."""
    fields: dict[str, Any] = {"e": env.event, "d": env.data}
    if env.kind == "room":
        fields["r"] = env.target
    if env.pos is not None:
        fields["o"] = list(env.pos)
    return Outgoing("event", fields)


def _lost_frame(stream: str, since: tuple[str, int]) -> Outgoing:
    """The ``$lost`` event: history no longer holds what ``stream`` published after the
    position the client gave (docs/protocol.md, section 7)."""
    data = {"stream": stream, "epoch": since[0], "from": since[1] + 1, "to": None}
    return Outgoing("event", {"e": "$lost", "d": data})


def _pos(value: Any) -> tuple[str, int] | None:
    """A stream position ``[epoch, offset]`` carried in a ticket, or None."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
        and value[1] >= 0
    ):
        return value[0], value[1]
    return None


def bearer(scope: Scope) -> str | None:
    """The bearer token of a request's Authorization header."""
    value = header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


# _call_plain()'s "the outcome is left to the session" (None is a handler's result).
_PENDING: Any = object()

# Handler results that are certainly not awaitable: skips inspect's ABC checks per event.
_PLAIN = frozenset({type(None), dict, list, str, int, float, bool, bytes})


def _ack(ack_id: int, ok: bool, data: Any, code: str = "", message: str = "") -> Outgoing:
    """The ack frame answering ``ack_id``: ``data`` if ``ok``, else the error."""
    if ok:
        return Outgoing("ack", {"id": ack_id, "ok": True, "d": data})
    err = {"code": code, "message": message[:1000]}
    return Outgoing("ack", {"id": ack_id, "ok": False, "err": err})


def _body(item: Outgoing, codec: Codec) -> bytes:
    """``item``'s body for ``codec`` (encoded once per codec, cached). Acks are encoded
    here, by the writer, not when the handler returns: a result the codec cannot carry
    becomes an error ack with the same id (``handler_error``), never a dead writer.
    Events are checked against every codec when they are created."""
    try:
        return item.body(codec)
    except TypeError as exc:
        if item.type != "ack":
            raise  # events are checked against every codec when created
        fields = {
            "id": item.fields.get("id"),
            "ok": False,
            "err": {"code": "handler_error", "message": f"result not sendable: {exc}"},
        }
        return codec.encode_body(fields)
