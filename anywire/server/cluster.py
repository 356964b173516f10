"""Several nodes on one Redis: session routing, single-use tickets, presence, remote calls.

* **Owner registry**: the node that accepts a session's transport connection owns it and
  records ``<prefix>:own:<sid> = node`` (refreshed while the session lives). A long-poll,
  an upstream POST or a resuming negotiate that lands on another node is forwarded to the
  owner over Redis (:meth:`Cluster.forward`): the owner runs the request against its own
  ASGI app in-process and replies status, headers and body. A request for a session whose
  owner is gone is answered locally (the session is unknown here: 4007), and the client
  starts a fresh session that catches up from stream history.
* **Tickets** carry the identity (signed with the shared secret), so any node can redeem
  them; ``SET NX`` on ``<prefix>:tk:<nonce>`` keeps them single-use across nodes.
* **Presence** (:mod:`.presence`) per room in a Redis hash; entries of a node whose
  heartbeat expired are ignored by queries and removed (with ``$leave`` events) by the
  first live node that declares it dead (:mod:`.liveness`).
* **Call outcomes**: a server call travels on the session's stream (:mod:`.calls`); the
  node that delivers it sends the client's answer back to the calling node's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import msgpack
from redis.exceptions import RedisError

from ..core.closecodes import CloseCode
from ..core.errors import AuthError, ProtocolError, RemoteProtocolError
from ..core.pinginterval import longest_hold
from ..core.streams import session_stream
from ..transports.base import Receive, Scope, Send, header, query, read_body, send_json_error
from .broker_redis import RedisBroker
from .disconnects import REASON, disconnect_here
from .errors import BrokerUnavailable
from .liveness import Liveness
from .presence import Presence
from .redis_cluster_calls import is_cluster, mget

if TYPE_CHECKING:
    from .app import Anywire

__all__ = ["Cluster", "replay_body"]

log = logging.getLogger("anywire.cluster")

# A session ended: drop its owner record (and its stream, when closed for good), unless
# another node owns it now (the session moved there and goes on). KEYS: owner[, stream].
_END = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', unpack(KEYS))
return 1
"""

_FORWARDED = "anywire.forwarded"  # scope flag: this request came from another node
_BODY = "anywire.body"  # scope key: the body, already read from the client


class Cluster:
    """The cross-node parts of one node (created by ``Anywire`` with a RedisBroker)."""

    def __init__(self, app: Anywire, broker: RedisBroker, owner_ttl: float = 600.0) -> None:
        self.app = app
        self.host = app.host
        self.broker = broker
        self.node = broker.node_id
        self.owner_ttl = owner_ttl
        # Dead = missing at two heartbeat checks two heartbeats apart (liveness.py).
        self.liveness = Liveness(confirm=2 * broker.heartbeat)
        self.presence = Presence(self.host, broker)
        self._known: set[str] = set()  # other nodes seen lately (see _check_nodes)
        self._last_refresh = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.counters = {"forwarded_out": 0, "forwarded_in": 0}
        broker.on_request = self._on_request
        broker.on_notice = self._on_notice
        broker.on_node_gone = self.liveness.gone
        broker.on_beat = self._beat

    # -- keys -----------------------------------------------------------------------------
    def _own(self, sid: str) -> str:
        return f"{self.broker.prefix}:own:{sid}"

    def _positions(self, nonce: str) -> str:
        return f"{self.broker.prefix}:tkp:{nonce}"

    @property
    def _nodes(self) -> str:
        return f"{self.broker.prefix}:nodes"

    # -- tickets and ownership --------------------------------------------------------------
    async def redeem(self, nonce: str, ttl: float) -> dict[str, tuple[str, int]]:
        """Make a ticket single-use across nodes (with Redis down only this node's own
        book is checked, documented in docs/scaling.md); returns the stream positions
        its negotiate kept (:meth:`keep_positions`)."""
        try:
            # Bounded: the client waits for its hello meanwhile (a paused Redis).
            async with asyncio.timeout(2.0), self.broker.redis.pipeline(False) as pipe:
                pipe.set(
                    f"{self.broker.prefix}:tk:{nonce}", b"1", nx=True, px=max(1, int(ttl * 1000))
                )
                pipe.getdel(self._positions(nonce))
                fresh, kept = await pipe.execute()
        except (RedisError, OSError, BrokerUnavailable, TimeoutError):
            log.warning("anywire: Redis unreachable or slow: ticket single use checked here only")
            return {}
        if not fresh:
            raise AuthError("ticket already used", CloseCode.SESSION_UNKNOWN)
        if kept is None:
            return {}
        return {str(k): (str(e), int(o)) for k, e, o in msgpack.unpackb(kept, raw=False)}

    async def attached(self, sid: str) -> None:
        """This node now owns ``sid`` (bounded: when Redis is slow or down the record is
        retried in the background, and the client gets its hello meanwhile)."""
        if not await self._claim(sid):
            self._spawn(self._claim_later(sid))

    async def _claim_later(self, sid: str) -> None:
        """Retry the owner record while the session lives here (about 30 s at most):
        until it is written, requests forwarded for ``sid`` go to its old node, which
        refuses them (4007: a token of an earlier session), so the client churns."""
        for delay in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0):
            await asyncio.sleep(delay)
            if sid not in self.host.sessions or await self._claim(sid):
                return

    async def _claim(self, sid: str) -> bool:
        """Write the owner record (bounded); end the copy on the node it named before."""
        try:
            async with asyncio.timeout(2.0):
                old = await self.broker.redis.set(
                    self._own(sid), self.node, ex=int(self.owner_ttl), get=True
                )
        except (RedisError, OSError, BrokerUnavailable, TimeoutError):
            return False
        if old is not None and _text(old) != self.node:
            # The client left its session on another node for this one (a resume the
            # load balancer sent here): end the old copy before the client gets its
            # hello, so no request of the new session can be served by the old copy
            # (its frame numbers would clash), and its rooms and presence go with it.
            with contextlib.suppress(RedisError, OSError, BrokerUnavailable, TimeoutError):
                await self.broker.request(_text(old), {"op": "end", "sid": sid}, 2.0)
        return True

    def ended(self, sid: str, namespace: str, end: str) -> None:
        """The session ``sid`` of this node ended (``end`` as in SessionHost._expire).
        Moved: it goes on elsewhere, and its owner record stays until its next node takes
        it over (calls to the sid meanwhile wait in its stream; requests forwarded here are
        answered 4007 and the client moves on). Expired: the owner record goes (unless
        another node took it). Closed: its stream goes too."""
        if end == "moved":
            return
        keys = [self._own(sid)]
        if end == "closed":
            keys += self.broker.stream_keys(session_stream(namespace, sid))
        self._spawn(self._release(keys))

    async def _release(self, keys: list[str]) -> None:
        redis = self.broker.redis
        with contextlib.suppress(RedisError, OSError, BrokerUnavailable):
            if not is_cluster(redis):
                await redis.eval(_END, len(keys), *keys, self.node)
                return
            # On a cluster the owner record and the stream are in two slots: the record
            # first (the check that no other node took the session), then the stream of
            # a session closed for good (nobody takes a closed session over meanwhile).
            if await redis.eval(_END, 1, keys[0], self.node) and len(keys) > 1:
                await redis.delete(*keys[1:])

    async def exists(self, sid: str) -> bool:
        """Whether some node owns session ``sid`` (raises BrokerUnavailable)."""
        try:
            return await self.owner(sid) is not None
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def keep_positions(
        self, nonce: str, since: dict[str, tuple[str, int]], ttl: float
    ) -> None:
        """Keep the positions a client reported at negotiate for whichever node redeems
        its ticket (too many for the ticket to carry). Raises BrokerUnavailable if Redis
        does not take them within 2 s: the client must negotiate again."""
        value = msgpack.packb([[k, e, o] for k, (e, o) in since.items()], use_bin_type=True)
        try:
            async with asyncio.timeout(2.0):
                await self.broker.redis.set(
                    self._positions(nonce), value, px=max(1, int(ttl * 1000))
                )
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"stream positions not kept: {exc!r}") from exc

    async def live_nodes(self) -> list[str]:
        """The other nodes registered and not declared dead (raises on Redis errors)."""
        listed = {_text(n) for n in await self.broker.redis.smembers(self._nodes)}
        return sorted(n for n in listed - {self.node} if not self.liveness.dead(n))

    async def owner(self, sid: str) -> str | None:
        """The node that owns ``sid`` according to the registry (None if unknown)."""
        value = await self.broker.redis.get(self._own(sid))
        return None if value is None else _text(value)

    # -- presence (server/presence.py) ------------------------------------------------------
    async def members(
        self, namespace: str, room: str, with_node: bool = False
    ) -> list[dict[str, Any]]:
        """Every member of ``room`` on every live node (``node`` too if ``with_node``)."""
        return [
            {"sid": sid, "user": user, "meta": meta, **({"node": node} if with_node else {})}
            for sid, user, meta, node in await self.presence.members(namespace, room)
        ]

    async def members_elsewhere(self, namespace: str, room: str) -> list[dict[str, Any]]:
        """Members of ``room`` on the other live nodes ([] if Redis is unreachable)."""
        try:
            everyone = await self.presence.members(namespace, room)
        except (RedisError, OSError, BrokerUnavailable):
            return []
        return [
            {"sid": sid, "user": user, "meta": meta}
            for sid, user, meta, node in everyone
            if node != self.node
        ]

    async def _check_nodes(self) -> list[str]:
        """Read every other node's heartbeat; returns the nodes declared dead now (and
        fails what is still forwarded to them)."""
        redis = self.broker.redis
        try:
            await redis.sadd(self._nodes, self.node)
            listed = {_text(n) for n in await redis.smembers(self._nodes)}
            # Also the nodes this one knew or waits for: another node's reaper may have
            # removed a dead node from the set before this one saw it missing, and its
            # requests here must fail all the same.
            others = sorted((listed | self._known | self.broker.waiting_for()) - {self.node})
            flags = await mget(redis, [self.broker.alive_key(n) for n in others])
        except (RedisError, OSError, BrokerUnavailable):
            self.liveness.unsure()  # nothing is judged across our own outage
            raise
        seen = {node: flag is not None for node, flag in zip(others, flags, strict=True)}
        dead = self.liveness.observe(time.monotonic(), seen)
        for node in dead:
            log.warning("anywire: node %s stopped beating: declared dead", node)
            self.broker.fail_requests_to(node, f"node {node} is gone")
        self._known = {n for n in others if n in listed or not self.liveness.dead(n)}
        return [n for n in others if n in listed and self.liveness.dead(n)]

    async def _reap(self, node: str) -> None:
        """Remove the presence of dead ``node``, once (a lock), with ``$leave``."""
        redis = self.broker.redis
        lock = f"{self.broker.prefix}:reap:{node}"
        if not await redis.set(lock, self.node, nx=True, ex=30):
            return
        removed = await self.presence.reap(node)
        await redis.srem(self._nodes, node)
        self.liveness.forget(node)
        log.info("anywire: node %s is gone; removed %d presence entries", node, removed)

    async def _beat(self) -> None:
        now = time.monotonic()
        if now - self._last_refresh >= self.owner_ttl / 4 and self.host.sessions:
            self._last_refresh = now
            async with self.broker.redis.pipeline(transaction=False) as pipe:
                for sid in list(self.host.sessions):
                    pipe.expire(self._own(sid), int(self.owner_ttl))
                await pipe.execute()
        for node in await self._check_nodes():
            await self._reap(node)

    # -- forwarding -------------------------------------------------------------------------
    async def forward(self, tail: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Forward a session-bound request to the node owning the session; False when it
        should be handled here (our session, unknown owner, owner gone, Redis down)."""
        method = scope.get("method")
        if scope.get(_FORWARDED) or (method, tail) not in (
            ("POST", "/send"),
            ("GET", "/poll"),
            ("POST", "/negotiate"),
        ):
            return False
        params = query(scope)
        if tail == "/poll" and "ticket" in params:
            return False
        limit = max(self.host.settings.max_frame_size, 64 * 1024) + 1
        body = b""
        if method == "POST":
            try:
                # The endpoint that handles the request answers a too-large body (413).
                body = await read_body(receive, limit, truncate=True)
            except ConnectionResetError:
                return True  # nobody left to answer
            # The body is consumed: from here on the request is answered either here (by
            # replaying the body) or by the owner.
            scope[_BODY] = body
        token: str | None
        if tail == "/negotiate":
            try:
                decoded = self.host.codec("json").decode(body) if body.strip() else None
            except RemoteProtocolError:
                decoded = None  # answered here, 400
            token = decoded.get("resume") if isinstance(decoded, dict) else None
        else:
            token = header(scope, b"x-anywire-token") or params.get("token")
        node = await self._remote_owner(token) if isinstance(token, str) else None
        if node is None:
            return False
        if self.host.closing and tail == "/poll":
            # Draining: a poll held here would hold the shutdown. "Nothing yet" is always
            # a true answer to a poll; the client polls again, and the balancer sends the
            # next one elsewhere.
            await _no_content(send)
            return True
        # A poll may be held longer than poll_window for a battery-profile session.
        window = longest_hold(self.host.settings) + self.host.settings.ping_timeout
        message = {
            "op": "http",
            "m": method,
            "p": scope.get("path", ""),
            "r": scope.get("root_path", ""),  # routed below a mount (server/mount.py)
            "q": scope.get("query_string", b""),
            "h": [list(h) for h in scope.get("headers", [])],
            "b": body,
        }
        self.counters["forwarded_out"] += 1
        try:
            reply = await self.broker.request(node, message, window + 5.0)
        except BrokerUnavailable:
            if self.host.closing:
                # This node is stopping: a poll gets "nothing yet" (see above); a POST's
                # outcome is unknown, so the client reconnects, resumes and resends.
                if tail == "/poll":
                    await _no_content(send)
                else:
                    error = ProtocolError("server shutting down", CloseCode.SHUTDOWN)
                    await send_json_error(send, 503, error)
                return True
            return False  # the owner died: the session is unknown here too (4007)
        except TimeoutError:
            error = ProtocolError("the session's node did not answer", CloseCode.SHUTDOWN)
            await send_json_error(send, 503, error)
            return True
        headers = [(bytes(k), bytes(v)) for k, v in reply.get("h", [])]
        await send({"type": "http.response.start", "status": reply["s"], "headers": headers})
        await send({"type": "http.response.body", "body": reply.get("b", b"")})
        return True

    async def _remote_owner(self, token: str) -> str | None:
        try:
            sid, _ = self.host.issuer.session_of(token)
        except ProtocolError:
            return None
        if sid in self.host.sessions:
            return None
        try:
            node = await self.owner(sid)
        except (RedisError, OSError, BrokerUnavailable):
            return None
        if node is None or node == self.node or self.liveness.dead(node):
            return None  # a dead owner's sessions are unknown everywhere (4007)
        return node

    async def _run_http(self, message: dict[str, Any]) -> dict[str, Any]:
        self.counters["forwarded_in"] += 1
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": message["m"],
            "scheme": "http",
            "path": message["p"],
            "root_path": message.get("r", ""),
            "raw_path": message["p"].encode(),
            "query_string": message["q"],
            "headers": [(bytes(k), bytes(v)) for k, v in message["h"]],
            "client": None,
            "server": None,
            _FORWARDED: True,
            _BODY: message["b"],
        }
        out: dict[str, Any] = {"s": 500, "h": [], "b": b""}
        never = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await never.wait()  # the requesting node holds the client connection
            return {"type": "http.disconnect"}

        async def send(event: MutableMapping[str, Any]) -> None:
            if event["type"] == "http.response.start":
                out["s"] = event["status"]
                out["h"] = [list(h) for h in event.get("headers", [])]
            elif event["type"] == "http.response.body":
                out["b"] += event.get("body", b"")

        await self.app(scope, receive, send)
        return out

    # -- call outcomes --------------------------------------------------------------------
    def send_outcome(self, node: str, token: str, outcome: dict[str, Any]) -> None:
        """Hand the outcome of call ``token`` to the node that made it, in the background
        (:meth:`deliver_outcome`)."""
        self._spawn(self.deliver_outcome(node, token, outcome))

    async def deliver_outcome(self, node: str, token: str, outcome: dict[str, Any]) -> None:
        """Hand the outcome of call ``token`` to the node that made it; returns once
        Redis took it (at most once: a caller that has gone meanwhile never hears it)."""
        await self.broker.notify(node, {"op": "outcome", "t": token, "o": outcome})

    def _on_notice(self, message: dict[str, Any]) -> None:
        if message.get("op") == "outcome" and isinstance(message.get("o"), dict):
            self.host.calls.resolve(str(message.get("t")), message["o"])

    async def _on_request(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "http":
            return await self._run_http(message)
        if op == "disconnect":  # the server API's disconnect (server/disconnects.py)
            n = disconnect_here(
                self.host,
                sid=_opt(message.get("sid")),
                user=_opt(message.get("user")),
                ns=_opt(message.get("ns")),
                reason=str(message.get("reason") or REASON),
            )
            return {"ok": True, "n": n}
        if op == "end":
            sess = self.host.sessions.get(str(message.get("sid")))
            if sess is not None:
                self.host.end_session(sess, "moved to another node")
            return {"ok": True}
        return {"ok": False, "err": "unknown op"}

    async def drain(self, timeout: float) -> None:
        """Let pending Redis writes (answers to other nodes' calls, presence, owner
        records) finish, bounded."""
        await self.host.calls.drain(timeout / 3)
        await self.presence.drain(timeout / 3)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout / 2)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


async def _no_content(send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def replay_body(scope: Scope, receive: Receive) -> Receive:
    """``receive`` for a request whose body :meth:`Cluster.forward` already read (it
    yields that body once, then defers to ``receive``); ``receive`` itself otherwise."""
    if _BODY not in scope:
        return receive
    body = scope[_BODY]
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent and isinstance(body, bytes):
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replay
