"""The asyncio client: negotiate, pick a transport with fallback, resume after drops.

All session bookkeeping (sequence numbers, what to resend, duplicates, cumulative acks)
is the core's :class:`~anywire.core.peer.ClientPeer`; this module only does I/O and
scheduling around it. One runner task owns the connection cycle::

    negotiate -> open transport -> hello -> pump frames -> (drop) -> backoff -> negotiate...

Everything the runner waits for is bounded: negotiate and each transport attempt by
``connect_timeout``, a live connection by the server's heartbeat (ping_interval +
ping_timeout of silence means dead), acks by their timeout, backoff by ``backoff_max``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar

import httpx

from ...core.closecodes import CloseCode, should_reconnect
from ...core.errors import LocalProtocolError, RemoteProtocolError
from ...core.frames import (
    Ack,
    Close,
    ErrorFrame,
    Event,
    Frame,
    Hello,
    Join,
    Leave,
    Ping,
)
from ...core.peer import ClientPeer
from ...core.redact import scrub_loggers
from ...core.settings import Settings
from .backoff import backoff, retry_delay, waits_out
from .continuity import Continuity, settle_lost
from .endpoints import endpoint
from .errors import (
    AckError,
    AckTimeout,
    AuthError,
    ConnectError,
    ConnectionClosed,
    FrameTooLarge,
    QueueFull,
)
from .handlers import Handlers, logged, takes_two
from .liveness import IdleCuts
from .negotiate import TokenSource
from .pacer import Pacer
from .proxies import ProxyOption, check_proxy, http_client
from .receipts import ReceiptSender
from .refresh import for_client
from .rounds import Fallback, connect_round
from .transports import TRANSPORT_CLASSES, ClientTransport, TransportClosed
from .wire import Negotiated, check_frame, check_name, make_codecs

__all__ = ["Client", "State"]

log = logging.getLogger("anywire.client")

State = Literal["connecting", "connected", "reconnecting", "disconnected"]
Handler = Callable[[Any], Any]
_H = TypeVar("_H", bound=Callable[..., Any])

_DEFAULTS = Settings()
# Size checks encode a frame before it has a sequence number or id: use the largest
# value either can take, so the estimate is never below the real size.
_PROBE = 2**53 - 1
# How long close() waits for the server to take the goodbye, and hooks to finish.
_CLOSE_GRACE = 1.0


class Client:
    """An anywire client session that survives transport drops.

    :param url: the server's base URL (``http://host:port``, or with a path prefix such as
        ``http://host/api``; https gives wss).
    :param path: anywire's endpoint prefix below ``url`` (the server's ``path``, default
        ``/anywire``): negotiate is ``POST {url}{path}/negotiate``. The transport URLs
        negotiate answers are resolved by :mod:`.endpoints` (a server mounted under a
        prefix gives them with it).
    :param token: the bearer token (JWT), or a sync or async callable returning it. A
        callable is called before *every* negotiate, so reconnects use a fresh token
        (e.g. after close code 4004 TOKEN_EXPIRED). None: anonymous, if the server allows.
    :param refresh: with a callable ``token``, hand the live session a fresh token from it
        at 80% of the credential's lifetime (``auth`` frame, no reconnect; see
        :mod:`anywire.clients.python.refresh`). False: let it expire (4004), then
        reconnect with a fresh one.
    :param namespace: the namespace to connect to (one client per namespace).
    :param transports: the transports this client may use; the server orders them.
    :param codec: preferred codec, ``"msgpack"`` or ``"json"`` (SSE is always JSON).
    :param connect_timeout: bound of each negotiate and of each transport attempt; no
        hello within it means the transport failed and the next one is tried.
    :param race_after: when the transport tried first has no hello after this many
        seconds, start the next one too and keep the first to answer (:mod:`.racing`);
        None: wait out the connect timeout before trying the next one.
    :param reconnect: reconnect and resume by itself after a drop (unless the close code
        is terminal, see :func:`anywire.core.closecodes.should_reconnect`).
    :param backoff_base: first reconnect delay ceiling, in seconds (full jitter).
    :param backoff_max: largest reconnect delay, in seconds.
    :param max_queue: most frames awaiting the server's confirmation, including frames
        queued while disconnected. When it is reached, :meth:`emit`, :meth:`call`,
        :meth:`join` and :meth:`leave` raise :class:`QueueFull` without queueing: at
        once while disconnected; while connected, after waiting up to the ack timeout
        for confirmations to free room (backpressure). Keep it at 16 or more: the
        server may wait for 16 frames before confirming when it has nothing to send.
    :param ack_timeout: default wait for acks in seconds; None: the server's value.
    :param headers: extra HTTP headers for every request, the WebSocket upgrade included
        (e.g. ``Origin``, cookies).
    :param proxy: an ``http://`` or ``https://`` proxy for every request and the
        WebSocket (a CONNECT tunnel); None: the environment's (``HTTP_PROXY``,
        ``HTTPS_PROXY``, ``NO_PROXY``); False: none (:mod:`.proxies`).
    :param pace: keep what is sent (messages, POSTs, polls, resumes) within the flood
        budget the server advertises, by waiting (:mod:`.pacer`); False: send at once,
        and risk a 4008 close (then the client backs off and resumes).
    :param heartbeat: the ping interval (seconds) to ask for at negotiate; None: the
        server's. Longer saves battery (fewer wake-ups), granted up to the server's
        ``max_ping_interval``, at the cost of noticing a dead connection later
        (granted interval + ping_timeout); a shorter one after idle cuts still wins.
    :param ws_deflate: offer permessage-deflate on the WebSocket (fewer bytes on a
        metered link when the server allows it, ``anywire serve --ws-deflate``; more CPU
        and memory on both ends). A server that does not allow it sends plain frames.
    :param ws_resume: after a WebSocket drop, resume by opening the WebSocket directly,
        without negotiate, where the server supports it (protocol section 2.2.1); off:
        every resume negotiates first.
    """

    def __init__(
        self,
        url: str,
        token: TokenSource = None,
        *,
        path: str = "/anywire",
        refresh: bool = True,
        namespace: str = "/",
        transports: Iterable[str] = ("websocket", "sse", "longpoll"),
        codec: str = "msgpack",
        connect_timeout: float = 5.0,
        race_after: float | None = 0.35,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        max_queue: int = 1000,
        ack_timeout: float | None = None,
        headers: dict[str, str] | None = None,
        pace: bool = True,
        proxy: ProxyOption = None,
        heartbeat: float | None = None,
        ws_deflate: bool = False,
        ws_resume: bool = True,
    ) -> None:
        self.transports = tuple(transports)
        unknown = [t for t in self.transports if t not in TRANSPORT_CLASSES]
        if unknown or not self.transports:
            raise ValueError(f"transports must be among {sorted(TRANSPORT_CLASSES)}: {unknown}")
        if codec not in ("msgpack", "json"):
            raise ValueError("codec must be 'msgpack' or 'json'")
        if connect_timeout <= 0 or max_queue < 1 or (ack_timeout is not None and ack_timeout <= 0):
            raise ValueError("connect_timeout, max_queue and ack_timeout must be positive")
        backoff(backoff_base, backoff_max)  # validates the schedule's parameters now
        self.url = url.rstrip("/")
        self.path = path.rstrip("/")
        endpoint(self.url, self.path)  # validates the path now
        self.fallback = Fallback()
        """Transports that failed, reported in every negotiate (kept across reconnects)."""
        self.namespace = namespace
        self.codec = codec
        self.connect_timeout = connect_timeout
        self.race_after = race_after
        self.reconnect = reconnect
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ack_timeout = ack_timeout
        self.headers = dict(headers or {})
        check_proxy(proxy)
        self.proxy = proxy
        self.ws_deflate = ws_deflate
        self.ws_resume = ws_resume
        self.pacer = Pacer(pace)
        """Paces every send below the server's flood budget (kept across reconnects)."""
        self.peer = ClientPeer(max_unconfirmed=max_queue)
        """The session's sequencing state (kept across reconnects)."""
        self.continuity = Continuity(self.peer, namespace)
        """Stream positions, rooms and open requests, kept across sessions."""
        self.sid: str | None = None
        """The session id, once connected (unchanged by a successful resume)."""
        self.recovered: bool | None = None
        """The last hello's ``recovered``: False means a fresh session (the client then
        rejoins its rooms and catches up by itself)."""
        self.last_close: tuple[int, str] | None = None
        """The last close code and reason the server gave, if any."""
        self.idle_cuts = IdleCuts(heartbeat=heartbeat)
        """Connections cut after a consistent idle time: the shorter ping interval to ask
        for (adaptive heartbeats, kept across reconnects)."""

        self._token = token
        self._codecs = make_codecs()
        self._connect_hooks: list[Callable[[], Any]] = []
        self._disconnect_hooks: list[Callable[[], Any]] = []
        self._state_hooks: list[tuple[Callable[..., Any], bool]] = []  # (hook, wants stats)
        self._error_hooks: list[Callable[[int, str], Any]] = []
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # async event handlers
        self._handlers = Handlers(self._reply, lambda aw: self._track_task(self._tasks, aw))
        self._hook_tasks: set[asyncio.Task[Any]] = set()  # async hooks
        self._http: httpx.AsyncClient | None = None
        self._live: ClientTransport | None = None
        self._runner: asyncio.Task[None] | None = None
        self._neg: Negotiated | None = None  # the last negotiate that led to a hello
        self._closed = False  # close() was called
        self._ended: ConnectionClosed | None = None  # ended for good by the server
        self._room = asyncio.Event()  # pulsed when room or state may have changed
        self._state: State = "disconnected"
        self.refresher = for_client(self, token) if refresh and callable(token) else None
        # httpx logs each request's URL at INFO (SSE and poll URLs hold the ticket) and
        # websockets its frames at DEBUG (auth frames hold the JWT): masked (core/redact).
        scrub_loggers("httpx", "websockets.client")
        """In-band token refresh (None without a token callable or with refresh=False)."""

    # -- registration ---------------------------------------------------------------------
    def on(self, event: str) -> Callable[[_H], _H]:
        """Decorator registering ``handler(data)`` or ``handler(data, info)`` (sync or
        async) for server event ``event``; ``info`` is an :class:`EventInfo` (room,
        stream position, ack id). If the server asked for an ack, the return value is
        sent back as an ok ack and an exception becomes an error ack
        (``handler_error``); an event nobody handles is answered with ``no_handler``.

        ``$lost`` events (``{stream, epoch, from, to, room?}``) say which offsets of a
        stream will never arrive: handle them to refresh what depends on that stream."""

        def register(fn: _H) -> _H:
            self._handlers.add(event, fn)
            return fn

        return register

    def on_connect(self, fn: _H) -> _H:
        """Decorator: ``fn()`` runs after every (re)connection, once the hello arrived
        (check :attr:`recovered` to know whether rooms must be joined again)."""
        self._connect_hooks.append(fn)
        return fn

    def on_disconnect(self, fn: _H) -> _H:
        """Decorator: ``fn()`` runs whenever a live connection ends, for any reason."""
        self._disconnect_hooks.append(fn)
        return fn

    def on_state(self, fn: _H) -> _H:
        """Decorator: ``fn(state)`` runs on every change of :attr:`state`; a hook taking
        two arguments gets ``fn(state, stats)`` (:attr:`stats`: idle cuts and the ping
        interval in use, as the JavaScript client's ``onState``)."""
        self._state_hooks.append((fn, takes_two(fn)))
        return fn

    def on_error(self, fn: _H) -> _H:
        """Decorator: ``fn(code, message)`` runs when the server rejects a frame with an
        ``error`` frame (the connection lives on)."""
        self._error_hooks.append(fn)
        return fn

    # -- state ----------------------------------------------------------------------------
    @property
    def rooms(self) -> dict[str, Any]:
        """Rooms this client joined (with their presence meta): joined again by itself,
        from where it stood in each, when a reconnection could not resume the session."""
        return self.continuity.joins.rooms

    @property
    def positions(self) -> dict[str, tuple[str, int]]:
        """Per room, the ``(epoch, offset)`` the client stands at in the room's stream."""
        return self.continuity.positions.rooms()

    @property
    def user_position(self) -> tuple[str, int] | None:
        """The ``(epoch, offset)`` of the last event of the user's personal stream."""
        return self.continuity.positions.implicit("user")

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``duplicates`` is the number of stream events dropped because the
        client already had them. The server never sends one: it stays 0 unless
        something is wrong (tests assert it). ``idle_cuts``: connections the network cut
        sooner than the heartbeat; ``ping_interval_ms``: how often the server pings this
        session (shorter than its default once the client asked, adaptive heartbeats)."""
        return {
            "duplicates": self.continuity.positions.duplicates,
            # Adaptive heartbeats: idle cuts seen, and the interval the server pings at.
            "idle_cuts": self.idle_cuts.cuts,
            "ping_interval_ms": int(self._neg.ping_interval * 1000) if self._neg else 0,
        }

    @property
    def state(self) -> State:
        """``connecting`` (first connect), ``connected``, ``reconnecting`` (after a drop,
        including backoff) or ``disconnected`` (not started, closed, or ended for good)."""
        return self._state

    @property
    def transport(self) -> str | None:
        """The name of the transport carrying the session now; None unless connected."""
        if self._live is not None and self._state == "connected":
            return self._live.name
        return None

    # -- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Negotiate and open the first transport that works, in the server's order.

        Raises :class:`AuthError` when the server refuses the credentials (``code``
        4501 for HTTP 401) or the connection (4505), :class:`ConnectError` when no
        transport delivered a hello. Once connected, drops are handled in the background
        (see ``reconnect``)."""
        if self._runner is not None and not self._runner.done():
            raise ConnectError("already connected or connecting")
        self._closed = False
        self._ended = None
        if self._http is None:
            self._http = http_client(self.proxy)
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first), name="anywire-client")
        try:
            # Bounded: at most one negotiate and one attempt per transport, each bounded
            # by connect_timeout.
            await first
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Say goodbye (the server ends the session at once) and stop every task.

        Pending calls fail with :class:`ConnectionClosed`; so do later sends. Frames not
        yet confirmed by the server are dropped: the session is over, and a later
        :meth:`connect` starts a new one. Safe to call more than once."""
        self._closed = True
        self._room.set()  # backpressure waiters raise ConnectionClosed
        live = self._live
        if live is not None and self._state == "connected":
            # Sent through the ordered queue, so it follows every frame emitted before;
            # then give the server a moment to hang up, so nothing written is lost.
            live.send([Close(CloseCode.NORMAL, "client closed")])
            await live.flush(_CLOSE_GRACE)
            await live.wait_ended(_CLOSE_GRACE)
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
        if runner is not None:
            await asyncio.gather(runner, return_exceptions=True)
        if self._live is not None:
            await self._live.close()
            self._live = None
        self._set_state("disconnected")
        self._fail_calls(ConnectionClosed(CloseCode.NORMAL, "client closed"))
        for task in self._tasks:
            task.cancel()
        if self._hook_tasks:  # let disconnect/state hooks finish, briefly
            await asyncio.wait(self._hook_tasks, timeout=_CLOSE_GRACE)
        for task in self._hook_tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._hook_tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self.peer = ClientPeer(self.peer.max_unconfirmed, draw=self.peer.receipts.draw)
        self.continuity = Continuity(self.peer, self.namespace)
        self._neg = None

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def drop_connection(self) -> None:
        """Drop the live connection abruptly, telling the server nothing, as a network
        failure would: the client then reconnects and resumes. For tests and demos."""
        self._drop()

    def _drop(self) -> None:
        """Synchronous form of :meth:`drop_connection`."""
        if self._live is not None:
            self._live.abort()

    # -- sending --------------------------------------------------------------------------
    async def emit(self, event: str, data: Any = None) -> None:
        """Send event ``event`` without waiting for an answer.

        While disconnected it is queued (see ``max_queue``) and sent after the next
        hello; once sent it is retransmitted until the server confirms it, and the
        server processes it once. Raises :class:`QueueFull`, :class:`FrameTooLarge`,
        :class:`TypeError` (data not serializable) or :class:`ConnectionClosed`."""
        check_name(event, "event")
        await self._submit(
            lambda: self.continuity.event(event, data), Event(s=_PROBE, e=event, d=data)
        )

    async def call(self, event: str, data: Any = None, timeout: float | None = None) -> Any:
        """Send event ``event`` and return the server handler's result.

        Raises :class:`AckTimeout` if no answer comes within ``timeout`` seconds
        (default: ``ack_timeout``, else the server's), :class:`AckError` if the server
        answered with an error (``handler_error``, ``no_handler``...), and the errors of
        :meth:`emit`."""
        check_name(event, "event")
        ack_id = self.peer.next_id()
        return await self._request(
            lambda: self.continuity.event(event, data, ack_id=ack_id),
            Event(s=_PROBE, e=event, d=data, id=ack_id),
            timeout,
        )

    async def join(
        self,
        room: str,
        meta: Any = None,
        timeout: float | None = None,
        since: tuple[str, int] | None = None,
    ) -> Any:
        """Join ``room`` with optional presence ``meta``; returns the server's answer
        (``{room, presence, count, partial, position}``: ``presence`` lists at most the
        server's ``presence_limit`` members, ``count`` says how many there are,
        ``partial`` whether some were left out). Raises :class:`AckError`
        (``forbidden``; ``bad_request`` for ``meta`` over the server's
        ``max_meta_size``) if refused.

        ``since`` (usually ``client.positions[room]``) asks for the room's events after
        that stream position, replayed from the server's bounded history before live
        ones; the answer's ``recovered`` says whether that history still covered it
        (what it did not is announced by a ``$lost`` event).

        :class:`AckTimeout` only ends the wait: the join stays pending and takes effect
        when its answer comes (the room then counts as joined and is rejoined after a
        lost session)."""
        check_name(room, "room")
        return await self._request(
            lambda: self.continuity.join(room, meta, since),
            Join(s=_PROBE, id=_PROBE, r=room, meta=meta, since=since),
            timeout,
        )

    async def leave(self, room: str, timeout: float | None = None) -> Any:
        """Leave ``room``; returns the server's answer."""
        check_name(room, "room")
        return await self._request(
            lambda: self.continuity.leave(room), Leave(s=_PROBE, id=_PROBE, r=room), timeout
        )

    async def _request(
        self, build: Callable[[], Event | Join | Leave], probe: Frame, timeout: float | None
    ) -> Any:
        """Queue a frame that carries an id and wait for the matching ack."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        frame = await self._submit(build, probe, register=fut)
        ack_id = frame.id
        assert ack_id is not None
        wait = timeout if timeout is not None else self._ack_timeout()
        try:
            async with asyncio.timeout(wait):
                return await fut
        except TimeoutError:
            raise AckTimeout(f"no ack for {ack_id} within {wait} s") from None
        finally:
            self._calls.pop(ack_id, None)
            self.continuity.gave_up(ack_id)

    async def _submit(
        self,
        build: Callable[[], Event | Join | Leave | Ack],
        probe: Frame,
        register: asyncio.Future[Any] | None = None,
    ) -> Event | Join | Leave | Ack:
        """Check a frame, wait for room (bounded), then track and send it.

        ``build`` creates the frame through the peer, which numbers it and keeps it for
        retransmission; it runs only once everything else passed, so a refused frame
        leaves no trace. ``register`` is the future an ack for it will resolve, recorded
        before the frame can leave so no answer can be missed."""
        self._check_open()
        self._check_frame(probe)
        await self._wait_room()
        try:
            frame = build()
        except LocalProtocolError:  # full: another sender took the room first
            raise QueueFull(f"{self.peer.max_unconfirmed} frames await confirmation") from None
        if register is not None and frame.id is not None:
            self._calls[frame.id] = register
        self._send(frame)
        return frame

    def _send(self, frame: Frame) -> None:
        # Offline, the frame waits in the peer's buffer and goes out after the next hello.
        if self._live is not None and self._state == "connected":
            self._live.send([frame])

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed(CloseCode.NORMAL, "client closed")
        if self._ended is not None:
            raise ConnectionClosed(self._ended.code, self._ended.reason)

    def _check_frame(self, probe: Frame) -> None:
        """Refuse, before queueing, a frame that could never be delivered (it would
        otherwise block the retransmission queue for good)."""
        live = self._live
        size_codec = live.codec if live is not None else self._codecs[self.codec]
        codecs = {id(c): c for c in (size_codec, self._codecs[self.codec], self._codecs["json"])}
        max_size = self._neg.max_frame_size if self._neg is not None else _DEFAULTS.max_frame_size
        try:
            check_frame(probe, codecs.values(), size_codec, max_size)
        except ValueError as exc:
            raise FrameTooLarge(str(exc)) from None

    async def _wait_room(self) -> None:
        if self.peer.has_room():
            return
        full = f"{self.peer.max_unconfirmed} frames await the server's confirmation"
        wait = self._ack_timeout()
        try:
            async with asyncio.timeout(wait):
                while not self.peer.has_room():
                    self._check_open()
                    if self._state != "connected":
                        # Nothing frees room before the next hello: do not block on it.
                        raise QueueFull(full + " (disconnected)")
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            raise QueueFull(f"{full} (waited {wait} s)") from None

    def _ack_timeout(self) -> float:
        if self.ack_timeout is not None:
            return self.ack_timeout
        return self._neg.ack_timeout if self._neg is not None else _DEFAULTS.ack_timeout

    # -- connection cycle -----------------------------------------------------------------
    async def _run(self, first: asyncio.Future[None]) -> None:
        try:
            await self._cycle(first)
        except asyncio.CancelledError:
            if not first.done():  # close() while connect() waits: connect() must return
                first.set_exception(ConnectionClosed(CloseCode.NORMAL, "client closed"))
            raise
        except Exception as exc:
            # A bug or something truly unexpected: never leave connect() or callers
            # hanging on a dead runner.
            log.exception("anywire client stopped")
            if not first.done():
                first.set_exception(ConnectError(f"client failed: {exc!r}"))
            self._finish(None, f"client failed: {exc!r}")

    async def _cycle(self, first: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        delays, waits = backoff(self.backoff_base, self.backoff_max), 0
        while True:
            self._set_state("reconnecting" if first.done() else "connecting")
            try:
                neg, transport, hello = await self._connect_round()
            except ConnectError as exc:
                # AuthError: the same credentials cannot work later either. A first connect
                # gives up too, unless a busy server said when to retry (Retry-After).
                busy = waits_out(exc.retry_after, waits := waits + 1)
                if isinstance(exc, AuthError) or not (first.done() or busy) or not self.reconnect:
                    if not first.done():
                        self._set_state("disconnected")
                        first.set_exception(exc)
                    else:
                        self._finish(exc.code, str(exc))
                    return
                delay = retry_delay(delays, exc.retry_after)
                log.info("anywire reconnect failed (%s); next try in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            self._attach(neg, transport, hello)
            if not first.done():
                first.set_result(None)
            started = loop.time()
            code, reason = await self._pump(transport)
            lived = loop.time() - started  # a 4001 at once: the hello was held back
            self.fallback.ended(transport.name, code, lived, transport.silence_limit())
            if self.idle_cuts.ended(transport.idle_at_end, code, neg.ping_interval):
                log.info("anywire: connections cut when idle; asking for pings every %.2f s",
                         self.idle_cuts.asked)  # fmt: skip
            if self._closed:
                await transport.close()
                return
            if code == CloseCode.FLOOD:
                self.pacer.spent()  # overspent (pacing off, or a budget shared): slow down
            terminal = not self.reconnect or (code is not None and not should_reconnect(code))
            if terminal:
                self._finish(code, reason)
            else:
                self._set_state("reconnecting")
            await transport.close()  # reap its tasks (already aborted by the pump)
            if terminal:
                return
            # Only a connection that outlived the longest delay resets the schedule, so a
            # server that accepts then drops at once is not hammered.
            if loop.time() - started >= self.backoff_max:
                delays = backoff(self.backoff_base, self.backoff_max)
            delay = next(delays)
            log.info("anywire connection lost (%s %s); reconnecting in %.2f s", code, reason, delay)
            await asyncio.sleep(delay)

    async def _connect_round(self) -> tuple[Negotiated, ClientTransport, Hello]:
        return await connect_round(self)  # rounds.py (fallback, remembered failures)

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = http_client(self.proxy)
        return self._http

    def _attach(self, neg: Negotiated, transport: ClientTransport, hello: Hello) -> None:
        resend, unanswerable = self.continuity.on_hello(hello)
        self.peer.set_rx_rule(neg.rx)  # the receipt rule this server asks for
        self._neg = neg
        self._live = transport
        self.sid = hello.sid
        self.recovered = hello.recovered
        transport.confirm_into(self.peer, self._room)  # answered POSTs, even late ones
        # Rejoins and unconfirmed frames go first into the ordered queue, before anything new.
        transport.send(resend)
        settle_lost(self._calls, unanswerable)  # continuity.py
        self._set_state("connected")
        if self.refresher is not None:
            self.refresher.start(neg.expires_in)
        for hook in self._connect_hooks:
            self._call_hook(hook)

    async def _pump(self, transport: ClientTransport) -> tuple[int | None, str]:
        """Read frames until the connection ends; returns its close code and reason."""
        silence = transport.silence_limit()
        receipts = ReceiptSender(self.peer, transport) if transport.sends_rx else None
        try:
            while True:
                async with asyncio.timeout(silence):
                    frames = await transport.recv()
                for frame in frames:
                    self._handle(transport, frame)
                if receipts is not None:
                    receipts.after_message()
                if self.peer.has_room():
                    self._room.set()
        except TransportClosed as exc:
            if exc.code is not None:
                self.last_close = (exc.code, exc.reason)
            return exc.code, exc.reason
        except TimeoutError:
            return None, f"server silent for {silence} s: connection presumed dead"
        except RemoteProtocolError as exc:
            # E.g. a sequence gap: frames were lost. Resuming replays them.
            log.warning("anywire protocol error, reconnecting: %s", exc)
            return None, str(exc)
        finally:
            if receipts is not None:
                receipts.stop()
            if self.refresher is not None:
                self.refresher.stop()
            if self._live is transport:
                self._live = None
            for hook in self._disconnect_hooks:
                self._call_hook(hook)
            transport.abort()  # synchronous, so it happens even if close() cancels us

    # -- receiving ------------------------------------------------------------------------
    def _handle(self, transport: ClientTransport, frame: Frame) -> None:
        if isinstance(frame, Ping):
            # Answer at once, with our cumulative rx so the server can trim its buffer.
            rx = self.peer.rx_due(force=True)
            transport.send([self.peer.pong()] if rx is None else [self.peer.pong(), rx])
            return
        if isinstance(frame, ErrorFrame):
            log.warning("anywire server rejected a frame: %s %s", frame.c, frame.m)
            for hook in self._error_hooks:
                self._call_hook(hook, frame.c, frame.m)
            return
        if frame.type in ("close", "hello", "pong", "connect", "resume"):
            return  # close: the transport ends next; the others mean nothing here
        handled = self.peer.receive(frame)  # sequencing and dedupe; raises on a gap
        if isinstance(handled, Event):
            # Stream positions: the second line of dedupe, and where to catch up from.
            if self.continuity.accept(handled):
                self._handlers.dispatch(handled)
        elif isinstance(handled, Ack):
            join = self.continuity.answered(handled)
            if join is not None and join.rejoin and not handled.ok:
                log.warning("anywire: rejoining %r was refused: %s", join.room, handled.err)
            fut = self._calls.get(handled.id)
            if fut is not None and not fut.done():
                if handled.ok:
                    fut.set_result(handled.d)
                else:
                    err = handled.err or {}
                    fut.set_exception(AckError(err.get("code", "error"), err.get("message", "")))

    def _reply(self, ack_id: int, ok: bool, data: Any, code: str = "", message: str = "") -> None:
        """Acknowledge a server event. Never blocks the pump: if the retransmission
        buffer is full the ack is dropped (the server's wait times out)."""
        if self._closed or self._ended is not None:
            return
        err = None if ok else {"code": code, "message": message}
        try:
            self._check_frame(Ack(s=_PROBE, id=ack_id, ok=ok, d=data, err=err))
        except (TypeError, FrameTooLarge) as exc:
            ok, data, err = False, None, {"code": "handler_error", "message": f"bad result: {exc}"}
        try:
            frame = self.peer.ack(ack_id, ok, data, err)
        except LocalProtocolError:
            log.warning("anywire: retransmission buffer full, ack %s dropped", ack_id)
            return
        self._send(frame)

    # -- helpers --------------------------------------------------------------------------
    def _set_state(self, state: State) -> None:
        if state == self._state:
            return
        self._state = state
        self._room.set()  # backpressure waiters re-check (a disconnect ends their wait)
        for hook, with_stats in self._state_hooks:
            args = (state, self.stats) if with_stats else (state,)
            self._call_hook(hook, *args)

    def _finish(self, code: int | None, reason: str) -> None:
        """The session ended for good (terminal code, reconnect disabled, refused)."""
        self._ended = ConnectionClosed(code, reason)
        self._live = None
        self._set_state("disconnected")
        self._fail_calls(self._ended)

    def _fail_calls(self, exc: Exception) -> None:
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(exc)
        self._calls.clear()

    def _call_hook(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a hook: sync ones inline (in order), async ones as tracked tasks. A
        failing hook is logged; it never breaks the connection."""
        try:
            result = fn(*args)
        except Exception:
            log.exception("anywire hook %r failed", fn)
            return
        if inspect.isawaitable(result):
            self._track_task(self._hook_tasks, logged(result, fn))

    def _track_task(self, tasks: set[asyncio.Task[Any]], aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
