"""The server HTTP API (opt-in): any backend publishes and reads, with a server API key.

Enabled by ``Anywire(api_key=...)`` or the ``ANYWIRE_API_KEY`` environment variable
(``anywire serve --api-key``); off by default (its paths answer 404). Several keys may
be valid at once (a list, comma-separated in the variable: key rotation). Every request
carries a key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (compared in
constant time with each; anything else: the uniform 401), and pays from that key's
budget (server/apikeys.py: ``Settings.api_rate``/``api_burst``; past it 429 with
``Retry-After`` and nothing done). Then:

* ``POST {path}/publish`` with ``{"event", "data", "room"|"user"|"sid"|"all": true,
  "ns", "idempotency_key"}`` publishes exactly as ``aw.emit`` does (same broker, streams,
  history, ordering and idempotency window) and answers ``{"ok": true, "pos": [stream,
  epoch, offset]}``; ``{"items": [...]}`` (at most :data:`MAX_ITEMS`) publishes each in
  order (issued together: one Redis pipeline) and answers ``{"results": [...]}``, one
  ``{"ok": ...}`` per item;
* ``GET {path}/api/presence?room=&ns=`` lists a room's members on every node;
* ``GET {path}/api/history?room=&ns=&epoch=&since=&limit=`` reads a room's bounded
  history (the same the broker replays to resuming clients);
* ``POST {path}/api/disconnect`` with ``{"sid"|"user", "ns", "reason"}`` closes and
  ends that session, or every session of that user, on every node
  (server/disconnects.py).

The idempotency key is the broker's (``emit(id=...)``): per stream, for the broker's
window (5 minutes); with Redis it holds across nodes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError, RemoteProtocolError
from ..core.frames import MAX_NAME
from ..core.streams import room_stream
from ..core.values import value_error
from ..transports.base import Receive, Scope, Send, header, query, read_body, send_json_error
from .apikeys import ApiKeys, parse_keys
from .auth import bearer
from .broker import Envelope
from .disconnects import REASON, disconnect
from .errors import BrokerUnavailable
from .negotiate import json_response

if TYPE_CHECKING:
    from .app import Anywire

__all__ = ["MAX_ITEMS", "PublishAPI"]

MAX_ITEMS = 100
"""Most publishes in one batch request."""

MAX_HISTORY = 1000
"""Most history entries one read returns."""

MAX_REASON = 100
"""Longest disconnect reason (a WebSocket close reason carries at most 123 bytes)."""

_FIELDS = frozenset({"event", "data", "room", "user", "sid", "all", "ns", "idempotency_key"})
_TARGETS = ("room", "user", "sid", "all")
_KINDS = {"room": "room", "user": "user", "sid": "session", "all": "all"}

log = logging.getLogger("anywire.api")


class _BadItem(Exception):
    """An item that cannot be published: ``status`` is 400, 404 (no such session) or 413."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def name(self) -> str:
        return {404: "not_found", 413: "too_large"}.get(self.status, "bad_request")

    def body(self) -> dict[str, Any]:
        """The uniform error body (as ``send_json_error`` writes it)."""
        code = CloseCode.MESSAGE_TOO_BIG if self.status == 413 else CloseCode.BAD_REQUEST
        return {"error": self.name, "code": int(code), "message": self.message}


class _OverRate(Exception):
    """A key over its rate: 429, ``Retry-After``, nothing of the request done."""

    def __init__(self, retry_after: float, rate: float, burst: int) -> None:
        super().__init__("over rate")
        self.retry_after = retry_after
        self.rate = rate
        self.burst = burst

    def body(self) -> dict[str, Any]:
        return {
            "error": "rate_limited",
            "code": int(CloseCode.FLOOD),
            "message": (
                f"this API key is over its rate ({self.rate:g}/s, burst {self.burst}; "
                f"a batch costs one per item): nothing was done, retry after "
                f"{self.retry_after:.3f} s"
            ),
            "retry_after": round(self.retry_after, 3),
        }


class PublishAPI:
    """The server API endpoints of one app (see the module docstring)."""

    def __init__(self, app: Anywire, keys: str | Sequence[str]) -> None:
        self.app = app
        settings = app.settings
        self.keys = ApiKeys(parse_keys(keys), settings.api_rate, settings.api_burst)
        self._refusing: set[int] = set()  # keys over their rate (logged once per episode)

    def __repr__(self) -> str:
        return "<PublishAPI>"  # never a key (a traceback with locals)

    def handles(self, tail: str) -> bool:
        """Whether ``tail`` (the path under the app's prefix) is one of these endpoints."""
        return tail in ("/publish", "/api/presence", "/api/history", "/api/disconnect")

    async def __call__(self, tail: str, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        want = "POST" if tail in ("/publish", "/api/disconnect") else "GET"
        if method != want:
            await send_json_error(
                send, 405, ProtocolError("method not allowed", CloseCode.BAD_REQUEST)
            )
            return
        key = self.keys.match(header(scope, b"x-api-key") or bearer(scope))
        if key is None:
            await send_json_error(
                send, 401, ProtocolError("bad or missing API key", CloseCode.UNAUTHORIZED)
            )
            return
        try:
            if tail == "/publish":
                await self._publish(key, receive, send)
            elif tail == "/api/disconnect":
                await self._disconnect(key, receive, send)
            else:
                self._charge(key, 1)
                if tail == "/api/presence":
                    await self._presence(scope, send)
                else:
                    await self._history(scope, send)
        except _BadItem as exc:
            await json_response(send, exc.status, exc.body(), [])
        except _OverRate as exc:
            headers = [(b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode())]
            await json_response(send, 429, exc.body(), headers)
        except BrokerUnavailable as exc:
            body = {
                "error": "unavailable",
                "message": str(exc),
                "maybe_published": exc.maybe_published,
            }
            await json_response(send, 503, body, [])

    def _charge(self, key: int, cost: int) -> None:
        """Spend ``cost`` of key ``key``'s budget, or raise :class:`_OverRate` (before
        anything of the request is done: a refused request publishes nothing)."""
        wait = self.keys.charge(key, cost, time.monotonic())
        if not wait:
            self._refusing.discard(key)
            return
        if key not in self._refusing:  # once per episode, not once per refusal
            self._refusing.add(key)
            log.warning("server API: %s over its rate, refusing with 429", self.keys.names[key])
        raise _OverRate(wait, self.keys.rate, self.keys.burst)

    # -- publish --------------------------------------------------------------------------
    async def _publish(self, key: int, receive: Receive, send: Send) -> None:
        settings = self.app.settings
        # A batch of MAX_ITEMS items at most max_frame_size each, with JSON around them.
        limit = settings.max_frame_size * 8
        try:
            raw = await read_body(receive, limit)
        except RemoteProtocolError:
            raise _BadItem(f"body larger than {limit} bytes", 413) from None
        body = _parse(raw)
        if isinstance(body, dict) and "items" in body:
            if set(body) != {"items"}:
                raise _BadItem("a batch body holds only 'items'")
            items = body["items"]
            if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS:
                raise _BadItem(f"'items' must be a list of 1-{MAX_ITEMS} publishes")
            self._charge(key, len(items))  # per item: a batch is as many publishes
            results = await self._batch(items)
            await json_response(send, 200, {"results": results}, [])
            return
        self._charge(key, 1)
        result = await self._one(body, single=True)
        await json_response(send, 200, result, [])

    async def _one(self, item: Any, single: bool = False) -> dict[str, Any]:
        """Publish one item; a bad one raises for a single request and answers
        ``{"ok": false, "error", "message"}`` in a batch (the others still go)."""
        try:
            env = await self._checked(item)
        except _BadItem as exc:
            if single:
                raise
            return {"ok": False, "error": exc.name, "message": exc.message}
        return await self._sent(env, single)

    async def _batch(self, items: list[Any]) -> list[dict[str, Any]]:
        """Publish ``items``: every item is checked first (in order), then the good ones
        are issued together, in item order, without awaiting each: with Redis they go as
        one pipeline (anywire/redis_batch.py), and items to one stream get their offsets
        in item order, as when each was awaited."""
        checked: list[Envelope | dict[str, Any]] = []
        for item in items:
            try:
                checked.append(await self._checked(item))
            except _BadItem as exc:
                checked.append({"ok": False, "error": exc.name, "message": exc.message})
        sends = {
            i: asyncio.ensure_future(self._sent(env))
            for i, env in enumerate(checked)
            if isinstance(env, Envelope)
        }
        await asyncio.gather(*sends.values())
        return [r if isinstance(r, dict) else sends[i].result() for i, r in enumerate(checked)]

    async def _checked(self, item: Any) -> Envelope:
        """The item's envelope (raises :class:`_BadItem`), its session checked."""
        env = self._envelope(item)
        if env.kind == "session" and env.target is not None:
            await self._check_session(env.target, env.namespace)
        return env

    async def _sent(self, env: Envelope, single: bool = False) -> dict[str, Any]:
        """Publish ``env``; its answer (a single request raises instead)."""
        try:
            try:
                pos = await self.app.host.publish(env)
            except TypeError as exc:  # data a codec cannot carry
                raise _BadItem(f"data cannot be sent: {exc}") from None
        except _BadItem as exc:
            if single:
                raise
            return {"ok": False, "error": exc.name, "message": exc.message}
        except BrokerUnavailable as exc:
            if single:
                raise
            return {
                "ok": False,
                "error": "unavailable",
                "message": str(exc),
                "maybe_published": exc.maybe_published,
            }
        return {"ok": True, "pos": list(pos)}

    async def _check_session(self, sid: str, ns: str) -> None:
        # A publish to a session that does not exist would create a stream for nobody
        # (aw.call refuses the same way): the backend is told instead.
        sess = self.app.host.sessions.get(sid)
        if sess is not None:
            if sess.namespace != ns:  # its stream is its namespace's: it would never see it
                raise _BadItem(f"session {sid!r} is in namespace {sess.namespace!r}", 404)
            return
        cluster = self.app.cluster
        if cluster is None or not await cluster.exists(sid):
            raise _BadItem(f"no session {sid!r} (ended, or never existed)", 404)

    def _envelope(self, item: Any) -> Envelope:
        settings = self.app.settings
        if not isinstance(item, dict):
            raise _BadItem("a publish must be a JSON object")
        unknown = sorted(set(item) - _FIELDS)
        if unknown:
            raise _BadItem(f"unknown field(s): {', '.join(unknown)}")
        event = item.get("event")
        if not isinstance(event, str) or not 0 < len(event) <= MAX_NAME:
            raise _BadItem(f"'event' must be a string of 1-{MAX_NAME} characters")
        if event.startswith("$"):
            raise _BadItem("'event' must not start with '$' (reserved)")
        targets = [t for t in _TARGETS if t in item]
        if len(targets) != 1:
            raise _BadItem("give exactly one of 'room', 'user', 'sid', 'all'")
        target = item[targets[0]]
        if targets[0] == "all":
            if target is not True:  # everyone in the namespace: said explicitly
                raise _BadItem("'all' must be true (everyone in the namespace)")
            target = None
        elif not isinstance(target, str) or not 0 < len(target) <= MAX_NAME:
            raise _BadItem(f"'{targets[0]}' must be a string of 1-{MAX_NAME} characters")
        ns = _namespace(item.get("ns", "/"))
        key = item.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
            raise _BadItem("'idempotency_key' must be a string of 1-200 characters")
        data = item.get("data")
        why = value_error(data, settings.max_depth)
        if why is not None:
            raise _BadItem(f"'data': {why}")
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
        if size > settings.max_frame_size:
            raise _BadItem(f"'data' larger than max_frame_size ({settings.max_frame_size})", 413)
        env = Envelope(_KINDS[targets[0]], ns, target, event, data)
        env.key = key
        return env

    # -- disconnect -----------------------------------------------------------------------
    async def _disconnect(self, key: int, receive: Receive, send: Send) -> None:
        try:
            raw = await read_body(receive, 4096)
        except RemoteProtocolError:
            raise _BadItem("body larger than 4096 bytes", 413) from None
        body = _parse(raw)
        if not isinstance(body, dict):
            raise _BadItem("a disconnect must be a JSON object")
        unknown = sorted(set(body) - {"sid", "user", "ns", "reason"})
        if unknown:
            raise _BadItem(f"unknown field(s): {', '.join(unknown)}")
        targets = [t for t in ("sid", "user") if t in body]
        if len(targets) != 1:
            raise _BadItem("give exactly one of 'sid', 'user'")
        target = body[targets[0]]
        if not isinstance(target, str) or not 0 < len(target) <= MAX_NAME:
            raise _BadItem(f"'{targets[0]}' must be a string of 1-{MAX_NAME} characters")
        ns = _namespace(body["ns"]) if "ns" in body else None  # absent: every namespace
        reason = body.get("reason", REASON)
        if not isinstance(reason, str) or not 0 < len(reason) <= MAX_REASON:
            raise _BadItem(f"'reason' must be a string of 1-{MAX_REASON} characters")
        self._charge(key, 1)
        count, missed = await disconnect(
            self.app,
            sid=target if targets[0] == "sid" else None,
            user=target if targets[0] == "user" else None,
            ns=ns,
            reason=reason,
        )
        answer = {"ok": True, "disconnected": count, "nodes_unanswered": missed}
        await json_response(send, 200, answer, [])

    # -- reads ----------------------------------------------------------------------------
    async def _presence(self, scope: Scope, send: Send) -> None:
        params = query(scope, blanks=True)
        room, ns = _room(params), _namespace(params.get("ns", "/"))
        members = await self.app.members(room, ns)
        await json_response(
            send, 200, {"room": room, "ns": ns, "count": len(members), "members": members}, []
        )

    async def _history(self, scope: Scope, send: Send) -> None:
        params = query(scope, blanks=True)
        room, ns = _room(params), _namespace(params.get("ns", "/"))
        epoch = params.get("epoch", "")
        since = _int(params, "since", 0, 0, 2**53)
        limit = _int(params, "limit", 100, 1, MAX_HISTORY)
        stream = room_stream(ns, room)
        try:
            read = await self.app.broker.read(stream, epoch, since)
        except ConnectionError as exc:
            raise BrokerUnavailable(f"history unreachable: {exc}") from None
        items = [
            {"offset": offset, "event": env.event, "data": env.data}
            for offset, env in read.entries[:limit]
            if isinstance(env, Envelope)
        ]
        # Complete: the items start right after ``since`` of the caller's epoch (a read
        # without an epoch asks from the start). Not when history was trimmed past it or
        # the epoch changed (the stream's history was lost: its items start over).
        start = since if read.epoch == epoch else 0
        first = read.entries[0][0] if read.entries else read.head + 1
        same = read.epoch == epoch or (not epoch and since == 0)
        await json_response(
            send,
            200,
            {
                "room": room,
                "ns": ns,
                "stream": stream,
                "epoch": read.epoch,
                "head": read.head,
                "complete": same and first <= start + 1,
                "more": len(read.entries) > limit,
                "items": items,
            },
            [],
        )


def _parse(raw: bytes) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw, parse_constant=refuse)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadItem(f"body is not valid JSON: {exc}") from None


def _namespace(ns: Any) -> str:
    if not isinstance(ns, str) or not ns.startswith("/") or len(ns) > MAX_NAME:
        raise _BadItem(f"'ns' must be a string starting with '/', at most {MAX_NAME} characters")
    if ns.startswith("/$"):
        raise _BadItem("'ns' names a reserved namespace")
    return ns


def _room(query: dict[str, str]) -> str:
    room = query.get("room", "")
    if not 0 < len(room) <= MAX_NAME:
        raise _BadItem(f"'room' must be given, 1-{MAX_NAME} characters")
    return room


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    # ASCII digits, at most 16 of them (2^53 has 16), as the protocol's integers
    # (transports.base.query_uint): int() also takes other scripts' digits, and a long
    # run of them is a ValueError (a 500) or seconds of CPU.
    if not (0 < len(text) <= 16 and text.isascii() and text.isdigit()) or not (
        low <= int(text) <= high
    ):
        raise _BadItem(f"'{name}' must be an integer from {low} to {high}")
    return int(text)
