"""The ``Anywire`` object: handlers, hooks, emit API and the ASGI entry point.

Usage::

    aw = Anywire(auth=JWTAuth("secret"))

    @aw.on("chat")
    async def chat(sock, data):
        await aw.emit("chat", data, room=data["room"], skip=sock)
        return "ok"                      # becomes the client's ack

It is a plain ASGI app (mount it anywhere, or run it alone) and a Litestar plugin
(:class:`~anywire.server.litestar.AnywirePlugin`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..core.auth import Identity
from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError
from ..core.frames import StreamPos
from ..core.session import ServerSession
from ..core.settings import Settings
from ..transports.base import (
    Receive,
    Scope,
    Send,
    header,
    send_json_error,
)
from ..transports.longpoll import LongPollTransport
from ..transports.sse import SSETransport
from ..transports.upstream import SendEndpoint
from ..transports.websocket import WebSocketTransport
from .admin import ADMIN_NAMESPACE, AdminView
from .auth import AnonymousAuth, Authenticator
from .broker import Broker, Envelope
from .broker_memory import MemoryBroker
from .broker_redis import RedisBroker
from .cluster import Cluster, replay_body
from .connlog import ConnLog
from .doctor import Doctor
from .errors import Disconnected, Reject
from .host import SessionHost
from .hosts import host_allowed, refuse_host
from .logs import scrub_uvicorn
from .metrics import Metrics
from .mount import land
from .negotiate import Negotiator, json_response
from .observe import Observer, Observers
from .publishapi import PublishAPI
from .socket import Socket
from .static import ClientAssets
from .undelivered import Undelivered

__all__ = ["Anywire"]

log = logging.getLogger("anywire")

Handler = Callable[[Socket, Any], Any]
Hook = Callable[[Socket], Any]
JoinHook = Callable[[Socket, str, Any], Any]


class Anywire:
    """A real-time endpoint: WebSocket, SSE and long-poll transports over one core.

    :param auth: authenticator for negotiate (e.g. :class:`~anywire.server.auth.JWTAuth`);
        ``None`` requires ``anonymous=True``.
    :param anonymous: accept callers without credentials (demo identities).
    :param settings: limits and timings (:class:`~anywire.core.settings.Settings`).
    :param broker: fan-out between nodes; the in-memory broker by default.
    :param path: URL prefix of every endpoint.
    :param secret: key that signs tickets and session tokens; when None, the
        ``ANYWIRE_SECRET`` environment variable, else random per process. Every node of a
        cluster must use the same secret.
    :param tick: how often session timers are checked, in seconds.
    :param metrics: what ``/anywire/metrics`` answers: ``"json"`` (default) or
        ``"prometheus"`` (needs ``anywire[metrics]``; docs/operations.md); None reads
        the ``ANYWIRE_METRICS`` environment variable.
    :param admin_token: turns the admin view on (``{path}/admin`` and the namespace
        ``/$admin``, server/admin.py); when None, the ``ANYWIRE_ADMIN_TOKEN`` environment
        variable, else off.
    :param api_key: turns the server HTTP API on (``POST {path}/publish``, presence and
        history reads, server/publishapi.py, docs/publish-api.md): one key or a list of
        keys valid at once (rotation); when None, the ``ANYWIRE_API_KEY`` environment
        variable (comma-separated), else off (404).
    """

    def __init__(
        self,
        *,
        auth: Authenticator | None = None,
        anonymous: bool = False,
        settings: Settings | None = None,
        broker: Broker | None = None,
        path: str = "/anywire",
        secret: bytes | None = None,
        node_id: str | None = None,
        tick: float = 0.25,
        metrics: str | None = None,
        admin_token: str | None = None,
        api_key: str | Sequence[str] | None = None,
    ) -> None:
        if auth is None and not anonymous:
            raise ValueError("pass auth=... (e.g. JWTAuth) or anonymous=True")
        self.settings = settings or Settings()
        self.auth: Authenticator = auth or AnonymousAuth()
        self.path = path.rstrip("/")
        if secret is None and os.environ.get("ANYWIRE_SECRET"):
            secret = os.environ["ANYWIRE_SECRET"].encode()
        self.secret_given = secret is not None
        self.node_id = node_id or secrets.token_hex(4)
        if broker is None and self.settings.redis_url:
            if secret is None:
                raise ValueError("redis_url needs a shared secret= (or ANYWIRE_SECRET)")
            broker = self._redis_broker(self.settings.redis_url)
        self.broker: Broker = broker or MemoryBroker(self.settings.stream_history)
        self.observers = Observers()
        """Listeners told of connections, fallbacks, resumes and refusals (server/observe.py)."""
        self.observers.add(ConnLog())  # connection logs on logger anywire.conn (connlog.py)
        scrub_uvicorn()  # uvicorn's access log prints query strings, and tickets (logs.py)
        self.host = SessionHost(
            self, self.settings, self.broker, secret or secrets.token_bytes(32), self.node_id, tick
        )
        self.cluster: Cluster | None = None
        self._bind_broker()
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._namespaces: set[str] = {"/"}
        # The handlers that are plain functions (not coroutine functions), decided once at
        # registration: the host calls them inline (inspect's check per event showed up
        # in the echo profile). Read-only outside this class.
        self.plain_handlers: dict[tuple[str, str], Handler] = {}
        self._connect_hooks: list[Hook] = []
        self._disconnect_hooks: list[Hook] = []
        self._join_hooks: list[JoinHook] = []
        self.undelivered = Undelivered(self)  # the on_undelivered hooks (undelivered.py)
        self._started = False
        self._stopped = False  # stop() ran: no request may start the host again
        self._start_lock = asyncio.Lock()
        self.websocket = WebSocketTransport(self.host)
        self.sse = SSETransport(self.host)
        self.longpoll = LongPollTransport(self.host)
        self.upstream = SendEndpoint(self.host)
        self.negotiator = Negotiator(self)
        self.metrics = Metrics(self, metrics)
        """The metrics endpoint (server/metrics.py); ``metrics.prometheus`` when on."""
        self.assets = ClientAssets(self.path)
        self.fallback: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
        self.doctor = Doctor(self) if self.settings.doctor else None  # server/doctor.py
        token = admin_token or os.environ.get("ANYWIRE_ADMIN_TOKEN")
        self.admin: AdminView | None = AdminView(self, token) if token else None
        key = api_key or os.environ.get("ANYWIRE_API_KEY")
        self.api: PublishAPI | None = PublishAPI(self, key) if key else None

    @property
    def client_url(self) -> str:
        """The versioned URL of the browser client's entry module (``anywire.js``)."""
        return self.assets.url()

    def use_redis(self, url: str) -> None:
        """Switch to the Redis broker (before the first request), e.g. from the CLI's
        ``--redis``. Every node must share the signing secret."""
        if self._started:
            raise RuntimeError("use_redis() must be called before the app starts")
        if not self.secret_given:
            raise ValueError(
                "a Redis cluster needs a shared secret: pass secret= or set ANYWIRE_SECRET"
            )
        self.broker = self._redis_broker(url)
        self.host.broker = self.broker
        self._bind_broker()

    def _redis_broker(self, url: str) -> RedisBroker:
        s = self.settings
        return RedisBroker(
            url, history=s.stream_history, heartbeat=s.node_heartbeat, linger=s.route_linger
        )

    def _bind_broker(self) -> None:
        if isinstance(self.broker, RedisBroker):
            self.broker.node_id = self.node_id
            self.broker.on_state = self.observers.broker_state
            self.cluster = Cluster(self, self.broker)
        else:
            self.cluster = None
        self.host.cluster = self.cluster

    # -- registration ---------------------------------------------------------------------
    def on(self, event: str, namespace: str = "/") -> Callable[[Handler], Handler]:
        """Decorator: ``handler(sock, data)`` for client events; its return value is the
        ack data, an exception becomes an error ack (``handler_error``)."""

        def register(fn: Handler) -> Handler:
            self._handlers[(namespace, event)] = fn
            self._namespaces.add(namespace)
            if inspect.iscoroutinefunction(fn):
                self.plain_handlers.pop((namespace, event), None)
            else:
                self.plain_handlers[(namespace, event)] = fn
            return fn

        return register

    def on_connect(self, fn: Hook) -> Hook:
        """Decorator: ``hook(sock)`` runs when a new session starts (not on resume). Raise
        :class:`~anywire.server.errors.Reject` (or return False) to refuse it (4505)."""
        self._connect_hooks.append(fn)
        return fn

    def on_disconnect(self, fn: Hook) -> Hook:
        """Decorator: ``hook(sock)`` runs when a session ends for good (closed, or not
        resumed within the resume window), not on every transport drop."""
        self._disconnect_hooks.append(fn)
        return fn

    def on_undelivered(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: ``hook(user, event)`` runs once per event sent to ``user`` that
        finds none of the user's devices connected (all in the background or gone), e.g.
        to send a push notification; ``event`` is an
        :class:`~anywire.server.undelivered.UndeliveredEvent`. Once across nodes."""
        return self.undelivered.register(fn)

    def on_join(self, fn: JoinHook) -> JoinHook:
        """Decorator: ``hook(sock, room, meta) -> bool`` authorizes client join requests.
        Without a hook every client join is allowed."""
        self._join_hooks.append(fn)
        return fn

    def namespaces(self) -> set[str]:
        """The namespaces with handlers (and ``/``): the ones metrics label by name."""
        return self._namespaces

    def handler(self, namespace: str, event: str) -> Handler | None:
        """The handler registered for ``event`` in ``namespace``."""
        return self._handlers.get((namespace, event))

    # -- emitting -------------------------------------------------------------------------
    async def emit(
        self,
        event: str,
        data: Any = None,
        *,
        room: str | None = None,
        user: str | None = None,
        to: str | Socket | None = None,
        skip: str | Socket | None = None,
        namespace: str = "/",
        id: str | None = None,
    ) -> StreamPos:
        """Send an event to one session (``to``), a room, every session of a user, or
        everyone in the namespace (no target). ``skip`` leaves one session out (e.g. the
        sender, live only: a replay from history includes it).

        Every target is a stream: the event gets the next offset there and reaches each
        client exactly once and in order, across drops, resumes and node failures, or the
        client gets ``$lost`` for it. Returns its position ``(stream, epoch, offset)``.

        ``id`` is an idempotency key: a publish with the same ``id`` to the same target
        within the broker's window (5 minutes by default) is not published again, and
        returns the first one's position. So an ``emit`` that raised
        :class:`~anywire.server.errors.BrokerUnavailable` with ``maybe_published`` can
        be retried with the same ``id`` without risking a duplicate.
        """
        if id is not None and (not isinstance(id, str) or not 0 < len(id) <= 200):
            raise ValueError("id must be a string of 1-200 characters")
        targets = sum(x is not None for x in (room, user, to))
        if targets > 1:
            raise ValueError("give at most one of room=, user=, to=")
        skip_sid = skip.sid if isinstance(skip, Socket) else skip
        if to is not None:
            sid = to.sid if isinstance(to, Socket) else to
            env = Envelope("session", namespace, sid, event, data, skip_sid)
        elif room is not None:
            env = Envelope("room", namespace, room, event, data, skip_sid)
        elif user is not None:
            env = Envelope("user", namespace, user, event, data, skip_sid)
        else:
            env = Envelope("all", namespace, None, event, data, skip_sid)
        env.key = id
        return await self.host.publish(env)

    def presence(self, room: str, namespace: str = "/") -> list[dict[str, Any]]:
        """Who is in ``room`` on this node: ``{"sid", "user", "meta"}`` per connection
        (see :meth:`members` for every node)."""
        return [dict(m.to_wire()) for m in self.host.rooms.members(namespace, room)]

    async def members(self, room: str, namespace: str = "/") -> list[dict[str, Any]]:
        """Who is in ``room`` on every node (with Redis; this node's members otherwise).
        Members of a crashed node drop out within 3 heartbeats (docs/scaling.md)."""
        if self.cluster is None:
            return self.presence(room, namespace)
        return await self.cluster.members(namespace, room)

    async def call(
        self,
        sid: str,
        event: str,
        data: Any = None,
        timeout: float | None = None,
        namespace: str = "/",
    ) -> Any:
        """Send ``event`` to session ``sid`` (of ``namespace``), on whichever node holds
        it, and return its acknowledgement data (AckTimeout, AckError, Disconnected as
        for Socket.call). The call travels on the session's stream: it still reaches
        the client if the session's node fails and the client moves to another."""
        wait = self.settings.ack_timeout if timeout is None else timeout
        sess = self.host.sessions.get(sid)
        if sess is not None:
            namespace = sess.namespace
        elif self.cluster is None or not await self.cluster.exists(sid):
            raise Disconnected("session unknown")
        return await self.host.calls.call(namespace, sid, event, data, wait)

    def socket(self, sid: str) -> Socket | None:
        """The live session ``sid``, if any."""
        return self.host.sockets.get(sid)

    # -- hooks used by the host -----------------------------------------------------------
    def make_socket(self, host: SessionHost, sess: ServerSession, identity: Identity) -> Socket:
        return Socket(host, sess, identity.claims)

    async def run_connect_hooks(self, sock: Socket) -> None:
        if sock.namespace == ADMIN_NAMESPACE:
            return  # the application's hooks are for its users, not the admin page
        for hook in self._connect_hooks:
            if await _maybe_await(hook(sock)) is False:
                raise Reject("connection refused")

    async def run_disconnect_hooks(self, sock: Socket) -> None:
        if sock.namespace == ADMIN_NAMESPACE:
            return
        for hook in self._disconnect_hooks:
            try:
                await _maybe_await(hook(sock))
            except Exception:
                log.exception("disconnect hook failed")

    async def authorize_join(self, sock: Socket, room: str, meta: Any) -> bool:
        for hook in self._join_hooks:
            if not await _maybe_await(hook(sock, room, meta)):
                return False
        return True

    # -- origins and CORS -----------------------------------------------------------------
    def origin_allowed(self, scope: Scope) -> bool:
        """No Origin (non-browser), same origin, or listed in ``allowed_origins``."""
        origin = header(scope, b"origin")
        if origin is None:
            return True
        allowed = self.settings.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        # Same origin counts only for a Host on the allow-list: a rebound DNS name makes
        # Origin and Host agree on the attacker's name.
        return origin == _own_origin(scope) and host_allowed(scope, self.settings.allowed_hosts)

    def cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        origin = header(scope, b"origin")
        if origin is None or origin == _own_origin(scope) or not self.origin_allowed(scope):
            return []
        return [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the host (broker, timers). Called by lifespan or on first request."""
        async with self._start_lock:
            self._stopped = False
            if not self._started:
                self.sse.reset()
                if isinstance(self.broker, RedisBroker) and self.undelivered.hooks:
                    # The hook's election needs every node to see every user event.
                    self.broker.every_user = True
                await self.host.start()
                self.host.issuer.gate.lag.start()  # load shedding (server/overload.py)
                await self.undelivered.start()  # a restart forgets its old counts
                if self.admin is not None:
                    self.admin.start()
                self._started = True
                await self.metrics.start()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown within ``grace`` seconds (``settings.shutdown_timeout`` by
        default): every client of this node is told to move (4000), its sessions end
        (their presence leaves are shared, their streams go on on other nodes), streams
        and pending polls end, timers and the broker stop. Until then requests of
        sessions owned by other nodes are still served (forwarded)."""
        self._stopped = True
        if self._started:
            budget = self.settings.shutdown_timeout if grace is None else grace
            if self.admin is not None:
                await self.admin.stop()
            await self.host.issuer.gate.lag.stop()
            await self.host.shutdown(budget)
            self.sse.shutdown_event.set()  # any stream still open ends now
            self._started = False
            await self.metrics.stop()

    # -- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        landing = land(scope, self.path)  # behind a mount too (server/mount.py)
        tail = landing.tail if landing is not None else None
        if tail is None:
            if self.fallback is not None:
                await self.fallback(scope, receive, send)
            elif kind == "http":
                await send_json_error(send, 404, ProtocolError("not found", 4502))
            return
        if tail not in _HOST_EXEMPT and not host_allowed(scope, self.settings.allowed_hosts):
            await refuse_host(scope, receive, send)  # DNS rebinding (server/hosts.py)
            return
        if not self._started:
            if self._stopped:
                # A request that arrives while the server shuts down (a client reconnecting
                # after its 4000, a request forwarded by another node) must not start the
                # host, broker and timers again: they would outlive the shutdown.
                await _refuse_stopped(kind, send)
                return
            await self.start()
        if self.doctor is not None and await self.doctor(tail, scope, receive, send):
            return
        if kind == "websocket":
            if tail == "/ws":
                await self.websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 4502})
            return
        await self._http(tail, scope, receive, send)

    async def _http(self, tail: str, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if tail.startswith("/client/") and method in ("GET", "HEAD"):
            await self.assets(tail[len("/client/") :], scope, receive, send)
            return
        if self.admin is not None and (tail == "/admin" or tail.startswith("/admin/")):
            await self.admin.page(tail, scope, receive, send)  # this node's, never forwarded
            return
        if self.api is not None and self.api.handles(tail):
            await self.api(tail, scope, receive, send)  # publishes go through the broker
            return
        if self.cluster is not None:
            if await self.cluster.forward(tail, scope, receive, send):
                return
            receive = replay_body(scope, receive)
        if method == "OPTIONS":
            await self._preflight(scope, send)
            return
        routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/negotiate"): self.negotiator,
            ("GET", "/sse"): self.sse,
            ("GET", "/poll"): self.longpoll,
            ("POST", "/send"): self.upstream,
            ("GET", "/health"): self._health,
            ("GET", "/metrics"): self.metrics,
        }
        endpoint = routes.get((method, tail))
        if endpoint is None:
            known = any(t == tail for _, t in routes)
            await send_json_error(
                send, 405 if known else 404, ProtocolError("no such endpoint", 4502)
            )
            return
        await endpoint(scope, receive, send)

    async def _preflight(self, scope: Scope, send: Send) -> None:
        if header(scope, b"origin") is None or not self.origin_allowed(scope):
            await send_json_error(send, 403, ProtocolError("origin not allowed", 4505))
            return
        headers = [
            *self.cors_headers(scope),
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
            (b"access-control-allow-headers", b"authorization, content-type, x-anywire-token"),
            (b"access-control-max-age", b"600"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.broker.state()
        await json_response(
            send,
            200 if state == "ok" else 503,
            {
                "status": state,
                "broker": state,
                "broker_kind": "redis" if isinstance(self.broker, RedisBroker) else "memory",
                "node": self.node_id,
                "sessions": len(self.host.sessions),
            },
            [],
        )

    def observe(self, observer: Observer) -> Observer:
        """Register a listener for what the realtime layer does (metrics, logs, admin)."""
        self.observers.add(observer)
        return observer

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


# Load balancers probe these by address, whatever Host they send.
_HOST_EXEMPT = ("/health", "/metrics")


async def _refuse_stopped(kind: str, send: Send) -> None:
    if kind == "websocket":
        await send({"type": "websocket.close", "code": int(CloseCode.SHUTDOWN)})
    elif kind == "http":
        await send_json_error(send, 503, ProtocolError("server shutting down", CloseCode.SHUTDOWN))


def _own_origin(scope: Scope) -> str | None:
    host = header(scope, b"host")
    if host is None:
        return None
    scheme = scope.get("scheme", "http")
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{scheme}://{host}"


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
