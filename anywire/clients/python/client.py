"""The asyncio client: negotiate, pick a transport with fallback, resume after drops.

All session bookkeeping (sequence numbers, what to resend, duplicates, cumulative acks)
is the core's :class:`~anywire.core.peer.ClientPeer`; this module only does I/O and
scheduling around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx
import msgpack

from ...core.closecodes import CloseCode, should_reconnect
from ...core.codec import Codec, JsonCodec, MsgpackCodec
from ...core.errors import LocalProtocolError, RemoteProtocolError
from ...core.frames import Ack, Close, ErrorFrame, Event, Frame, Hello, Join, Leave, Ping
from ...core.peer import ClientPeer
from .backoff import backoff
from .errors import (
    AckError,
    AckTimeout,
    AuthError,
    ConnectError,
    ConnectionClosed,
    QueueFull,
)
from .transports import TRANSPORT_CLASSES, ClientTransport, TransportClosed

__all__ = ["Client"]

log = logging.getLogger("anywire.client")

TokenSource = str | Callable[[], str | Awaitable[str | None] | None] | None
Handler = Callable[[Any], Any]


class Client:
    """An anywire client session that survives transport drops.

    :param url: the server's base URL (``http://host:port``).
    :param token: the bearer token, or a (sync or async) callable returning it; a callable
        is called before every negotiate, so refreshed tokens are used on reconnect.
    :param transports: transports this client may use, in no particular order (the server
        orders them).
    :param codec: preferred codec, ``"msgpack"`` or ``"json"``.
    :param connect_timeout: per transport attempt: no hello within it means it failed.
    :param max_queue: most frames waiting for the server's confirmation (sent, or queued
        while offline). When it is reached, :meth:`emit`, :meth:`call`, :meth:`join` and
        :meth:`leave` wait for confirmations to free room (backpressure) for up to the ack
        timeout, then raise :class:`QueueFull` having queued nothing: the caller decides
        whether to drop or retry.
    """

    def __init__(
        self,
        url: str,
        token: TokenSource = None,
        *,
        namespace: str = "/",
        transports: Iterable[str] = ("websocket", "sse", "longpoll"),
        codec: str = "msgpack",
        connect_timeout: float = 5.0,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        max_queue: int = 1000,
        ack_timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.transports = tuple(transports)
        self.codec_name = codec
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ack_timeout = ack_timeout
        self.headers = dict(headers or {})
        self._token = token
        self.peer = ClientPeer(max_unconfirmed=max_queue)
        self._codecs: dict[str, Codec] = {
            "json": JsonCodec(),
            "msgpack": MsgpackCodec(msgpack.packb, msgpack.unpackb),
        }
        self._handlers: dict[str, Handler] = {}
        self._hooks: dict[str, list[Callable[..., Any]]] = {
            "connect": [],
            "disconnect": [],
            "state": [],
            "error": [],
        }
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None
        self._live: ClientTransport | None = None
        self._runner: asyncio.Task[None] | None = None
        self._neg: dict[str, Any] = {}
        self._closed = False
        self._room = asyncio.Event()  # set when confirmations free retransmission room
        self.state = "disconnected"
        self.sid: str | None = None
        self.recovered: bool | None = None
        self.last_close: tuple[int, str] | None = None

    # -- registration ---------------------------------------------------------------------
    def on(self, event: str) -> Callable[[Handler], Handler]:
        """Decorator: ``handler(data)`` for server events (sync or async). If the server
        asked for an ack, the return value is sent back; an exception becomes an error
        ack (``handler_error``)."""

        def register(fn: Handler) -> Handler:
            self._handlers[event] = fn
            return fn

        return register

    def on_connect(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: runs after every (re)connection, once the hello arrived."""
        self._hooks["connect"].append(fn)
        return fn

    def on_disconnect(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Decorator: runs when a connection is lost or closed."""
        self._hooks["disconnect"].append(fn)
        return fn

    def on_state(self, fn: Callable[[str], Any]) -> Callable[[str], Any]:
        """Decorator: runs with the new state on every state change."""
        self._hooks["state"].append(fn)
        return fn

    def on_error(self, fn: Callable[[int, str], Any]) -> Callable[[int, str], Any]:
        """Decorator: runs with (code, message) when the server rejects a frame."""
        self._hooks["error"].append(fn)
        return fn

    # -- public API -----------------------------------------------------------------------
    @property
    def transport(self) -> str | None:
        """The transport carrying the session now, None while disconnected."""
        return self._live.name if self._live is not None and self.state == "connected" else None

    async def connect(self) -> None:
        """Connect, falling back through the offered transports. Raises AuthError when the
        server refuses the credentials, ConnectError when nothing worked."""
        if self._runner is not None:
            raise ConnectError("already connected")
        self._closed = False
        self._http = httpx.AsyncClient(timeout=10.0)
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first))
        try:
            await first
        except BaseException:
            await self.close()
            raise

    async def emit(self, event: str, data: Any = None) -> None:
        """Send an event without waiting for an answer; queued while disconnected."""
        self._send(await self._track(lambda: self.peer.event(event, data)))

    async def call(self, event: str, data: Any = None, timeout: float | None = None) -> Any:
        """Send an event and return the server handler's result.

        Raises :class:`AckTimeout` if no answer comes within ``timeout`` (default: the
        server's ack_timeout), :class:`AckError` if the handler failed."""
        ack_id = self.peer.next_id()
        frame = await self._track(lambda: self.peer.event(event, data, ack_id=ack_id))
        return await self._await_ack(ack_id, frame, timeout)

    async def join(self, room: str, meta: Any = None, timeout: float | None = None) -> Any:
        """Ask to join ``room``; returns ``{room, presence}``. AckError if refused."""
        frame = await self._track(lambda: self.peer.join(room, meta))
        assert isinstance(frame, Join)
        return await self._await_ack(frame.id, frame, timeout)

    async def leave(self, room: str, timeout: float | None = None) -> Any:
        """Leave ``room``."""
        frame = await self._track(lambda: self.peer.leave(room))
        assert isinstance(frame, Leave)
        return await self._await_ack(frame.id, frame, timeout)

    async def drop_connection(self) -> None:
        """Drop the current connection without telling the server, as a network failure
        would; the client then reconnects and resumes. For tests and demos."""
        if self._live is not None:
            self._live.abort()

    async def close(self) -> None:
        """Say goodbye (the server ends the session at once) and stop everything."""
        self._closed = True
        live = self._live
        if live is not None and self.state == "connected":
            live.queue([Close(CloseCode.NORMAL, "client closed")])
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    while live._outbox and not live.closed:
                        await asyncio.sleep(0.01)
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        if self._live is not None:
            await self._live.close()
            self._live = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_calls(ConnectionClosed(CloseCode.NORMAL, "client closed"))
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._set_state("disconnected")

    # -- sending --------------------------------------------------------------------------
    async def _track(self, build: Callable[[], Frame]) -> Frame:
        """Build a sequenced frame once the retransmission buffer has room.

        Backpressure: while ``max_queue`` frames await the server's confirmation, wait
        (up to the ack timeout) for confirmations to free room; then give up with
        QueueFull, having queued nothing."""
        if self._closed and self._runner is None:
            raise ConnectionClosed(None, "client is closed")
        if not self.peer.has_room():
            try:
                async with asyncio.timeout(self._default_timeout()):
                    while not self.peer.has_room():
                        self._room.clear()
                        await self._room.wait()
            except TimeoutError:
                raise QueueFull(f"{self.peer.max_unconfirmed} frames await confirmation") from None
        try:
            return build()
        except LocalProtocolError:
            raise QueueFull(f"{self.peer.max_unconfirmed} frames await confirmation") from None

    def _default_timeout(self) -> float:
        if self.ack_timeout is not None:
            return self.ack_timeout
        return float(self._neg.get("ack_timeout", 10_000)) / 1000

    def _send(self, frame: Frame) -> None:
        # Offline, the frame waits in the peer's buffer and is resent after the hello.
        if self._live is not None and self.state == "connected":
            self._live.queue([frame])

    async def _await_ack(self, ack_id: int, frame: Frame, timeout: float | None) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[ack_id] = fut
        self._send(frame)
        wait = timeout if timeout is not None else self._default_timeout()
        try:
            async with asyncio.timeout(wait):
                return await fut
        except TimeoutError:
            raise AckTimeout(f"no ack within {wait} s") from None
        finally:
            self._calls.pop(ack_id, None)

    # -- connection loop ------------------------------------------------------------------
    async def _run(self, first: asyncio.Future[None]) -> None:
        delays = backoff(self.backoff_base, self.backoff_max)
        while True:
            self._set_state("connecting" if not first.done() else "reconnecting")
            try:
                await self._connect_once()
            except (AuthError, ConnectError) as exc:
                terminal = isinstance(exc, AuthError) or not first.done() or not self.reconnect
                if terminal:
                    if not first.done():
                        first.set_exception(exc)
                    else:
                        self._finish(exc.code, str(exc))
                    return
                await asyncio.sleep(next(delays))
                continue
            if not first.done():
                first.set_result(None)
            delays = backoff(self.backoff_base, self.backoff_max)
            code, reason = await self._pump()
            await self._run_hooks("disconnect")
            if self._closed:
                return
            if (code is not None and not should_reconnect(code)) or not self.reconnect:
                self._finish(code, reason)
                return
            self._set_state("reconnecting")
            await asyncio.sleep(next(delays))

    def _finish(self, code: int | None, reason: str) -> None:
        self._set_state("disconnected")
        self._fail_calls(ConnectionClosed(code, reason))

    async def _connect_once(self) -> None:
        failed: list[str] = []
        last_error: Exception | None = None
        while True:
            neg = await self._negotiate(failed)
            offers = [o for o in neg["transports"] if o["name"] in self.transports]
            offers = [o for o in offers if o["name"] not in failed]
            if not offers:
                raise ConnectError(f"no transport worked: {last_error}")
            offer = offers[0]
            transport = TRANSPORT_CLASSES[offer["name"]](
                self.url,
                offer,
                neg,
                self._codecs[offer["codec"]],
                self._http_client(),
                self.headers,
            )
            resume = self.peer.in_last if neg.get("resumable") else None
            try:
                hello = await transport.open(resume, self.connect_timeout)
            except (TransportClosed, TimeoutError, OSError, httpx.HTTPError, Exception) as exc:
                await transport.close()
                code = getattr(exc, "code", None)
                if code in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN):
                    raise AuthError(f"refused: {exc}", code) from exc
                log.info("transport %s failed: %r", offer["name"], exc)
                failed.append(offer["name"])
                last_error = exc
                continue
            self._neg = neg
            self._attach(transport, hello)
            return

    async def _negotiate(self, failed: list[str]) -> dict[str, Any]:
        token = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        headers = dict(self.headers)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {
            "v": 1,
            "ns": self.namespace,
            "transports": list(self.transports),
            "codecs": [self.codec_name, "json"],
            "failed": failed,
        }
        if self._neg.get("token"):
            body["resume"] = self._neg["token"]
        try:
            r = await self._http_client().post(
                self.url + "/anywire/negotiate",
                json=body,
                headers=headers,
                timeout=self.connect_timeout,
            )
        except (httpx.HTTPError, OSError) as exc:
            raise ConnectError(f"negotiate failed: {exc}") from exc
        if r.status_code in (401, 403):
            code = (
                r.json().get("code")
                if r.headers.get("content-type", "").startswith("application/json")
                else None
            )
            raise AuthError(f"negotiate refused: HTTP {r.status_code} {r.text}", code)
        if r.status_code != 200:
            raise ConnectError(f"negotiate failed: HTTP {r.status_code}")
        return dict(r.json())

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        return self._http

    def _attach(self, transport: ClientTransport, hello: Hello) -> None:
        resend = self.peer.on_hello(hello)
        self._room.set()
        self.sid = hello.sid
        self.recovered = hello.recovered
        self._live = transport
        # Resent frames go first into the ordered send queue, before any new emit.
        transport.queue(resend)
        self._set_state("connected")
        self._spawn(self._run_hooks("connect"))

    async def _pump(self) -> tuple[int | None, str]:
        """Read frames until the connection ends; returns its close code and reason."""
        transport = self._live
        assert transport is not None
        silence = (self._neg["ping_interval"] + self._neg["ping_timeout"]) / 1000
        if transport.acks_in_requests:
            silence = (self._neg["poll_window"] + 2 * self._neg["ping_timeout"]) / 1000
        try:
            while True:
                frames = await transport.recv(silence)
                for frame in frames:
                    self._handle(transport, frame)
                if self.peer.has_room():
                    self._room.set()
                if transport.acks_in_requests:
                    transport.received = self.peer.in_last  # type: ignore[attr-defined]
                else:
                    rx = self.peer.rx_due()
                    if rx is not None:
                        transport.queue([rx])
        except TransportClosed as exc:
            if exc.code is not None:
                self.last_close = (exc.code, exc.reason)
            return exc.code, exc.reason
        except TimeoutError:
            return None, "server silent: connection presumed dead"
        except RemoteProtocolError as exc:
            log.warning("protocol error, reconnecting: %s", exc)
            return None, str(exc)
        finally:
            self._live = None
            if not self._closed:
                self._set_state("reconnecting")
            await transport.close()

    def _handle(self, transport: ClientTransport, frame: Frame) -> None:
        if isinstance(frame, Ping):
            rx = self.peer.rx_due(force=True)
            replies: list[Frame] = [self.peer.pong()]
            if rx is not None:
                replies.append(rx)
            transport.queue(replies)
            return
        if isinstance(frame, ErrorFrame):
            log.warning("server rejected a frame: %s %s", frame.c, frame.m)
            for hook in self._hooks["error"]:
                self._spawn(_call(hook, frame.c, frame.m))
            return
        if isinstance(frame, Close):
            return  # the transport raises TransportClosed next
        handled = self.peer.receive(frame)
        if isinstance(handled, Event):
            self._spawn(self._on_event(handled))
        elif isinstance(handled, Ack):
            fut = self._calls.get(handled.id)
            if fut is not None and not fut.done():
                if handled.ok:
                    fut.set_result(handled.d)
                else:
                    err = handled.err or {}
                    fut.set_exception(AckError(err.get("code", "error"), err.get("message", "")))

    async def _on_event(self, event: Event) -> None:
        handler = self._handlers.get(event.e)
        if handler is None:
            if event.id is not None:
                await self._reply(
                    event.id, False, None, "no_handler", f"no handler for {event.e!r}"
                )
            return
        try:
            result = await _call(handler, event.d)
        except Exception as exc:
            if event.id is not None:
                await self._reply(
                    event.id, False, None, "handler_error", str(exc) or type(exc).__name__
                )
            else:
                log.exception("handler for %r failed", event.e)
            return
        if event.id is not None:
            await self._reply(event.id, True, result)

    async def _reply(
        self, ack_id: int, ok: bool, data: Any, code: str = "", message: str = ""
    ) -> None:
        err = None if ok else {"code": code, "message": message}
        with contextlib.suppress(QueueFull):
            self._send(await self._track(lambda: self.peer.ack(ack_id, ok, data, err)))

    # -- helpers --------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            for hook in self._hooks["state"]:
                self._spawn(_call(hook, state))

    async def _run_hooks(self, name: str) -> None:
        for hook in self._hooks[name]:
            try:
                await _call(hook)
            except Exception:
                log.exception("%s hook failed", name)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail_calls(self, exc: Exception) -> None:
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(exc)
        self._calls.clear()


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
