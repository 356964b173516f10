"""The application the end-to-end tests run under real uvicorn.

Timings are shortened through environment variables so heartbeats, resume windows and
poll windows can be exercised in seconds.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.server.auth import JWTAuth
from anywire.server.errors import AckError, AckTimeout, BrokerUnavailable, Disconnected, Reject
from anywire.server.socket import Socket

SECRET = "anywire-test-secret-0123456789abcdef"
AUDIENCE = "anywire-tests"


def _f(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


settings = Settings(
    max_frame_size=int(_f("AW_MAX_FRAME", 16 * 1024)),
    max_depth=int(_f("AW_MAX_DEPTH", 32)),
    ping_interval=_f("AW_PING_INTERVAL", 1.0),
    ping_timeout=_f("AW_PING_TIMEOUT", 1.5),
    min_ping_interval=_f("AW_MIN_PING_INTERVAL", 5.0),
    max_ping_interval=_f("AW_MAX_PING_INTERVAL", 0.0) or None,
    poll_window=_f("AW_POLL_WINDOW", 2.0),
    resume_window=_f("AW_RESUME_WINDOW", 3.0),
    outbox_size=int(_f("AW_OUTBOX", 5000)),
    outbox_bytes=int(_f("AW_OUTBOX_BYTES", 64 * 1024 * 1024)),  # test_backpressure owes 14 MB
    max_meta_size=int(_f("AW_MAX_META", 1024)),
    presence_limit=int(_f("AW_PRESENCE_LIMIT", 100)),
    allowed_origins=tuple(os.environ.get("AW_ALLOWED_ORIGINS", "http://allowed.example").split(",")),
    allowed_hosts=tuple(h for h in os.environ.get("AW_ALLOWED_HOSTS", "").split(",") if h),
    transports=tuple(os.environ.get("AW_TRANSPORTS", "websocket,sse,longpoll").split(",")),
    # Every test client comes from 127.0.0.1: admission limits are off unless a test sets them.
    max_sessions=int(_f("AW_MAX_SESSIONS", 1_000_000)),
    max_sessions_per_user=int(_f("AW_MAX_SESSIONS_PER_USER", 1_000_000)),
    max_sessions_per_ip=int(_f("AW_MAX_SESSIONS_PER_IP", 1_000_000)),
    negotiate_rate=_f("AW_NEGOTIATE_RATE", 1e6),
    negotiate_burst=int(_f("AW_NEGOTIATE_BURST", 1_000_000)),
    busy_retry_after=_f("AW_BUSY_RETRY_AFTER", 5.0),
    flood_rate=_f("AW_FLOOD_RATE", 2000),
    flood_burst=int(_f("AW_FLOOD_BURST", 5000)),
    ack_delay=_f("AW_ACK_DELAY", 0.1),
    rx_wait=_f("AW_RX_WAIT", 1.0),
    ack_timeout=_f("AW_ACK_TIMEOUT", 10.0),
    stream_history=int(_f("AW_HISTORY", 1000)),
    node_heartbeat=_f("AW_NODE_HEARTBEAT", 1.0),
    route_linger=_f("AW_ROUTE_LINGER", 5.0),
    shutdown_timeout=_f("AW_SHUTDOWN_TIMEOUT", 2.0),
    api_rate=_f("AW_API_RATE", 1000.0),
    api_burst=int(_f("AW_API_BURST", 1000)),
)

aw = Anywire(
    auth=JWTAuth(SECRET, audience=AUDIENCE),
    settings=settings,
    tick=_f("AW_TICK", 0.05),
    path=os.environ.get("AW_PATH", "/anywire"),  # tests/e2e/mountapp.py mounts it elsewhere
    node_id=os.environ.get("AW_NODE_ID") or None,  # a fixed id: a restart is the same node
)
if aw.admin is not None:  # ANYWIRE_ADMIN_TOKEN set: snapshots more often than in production
    aw.admin.interval = _f("AW_ADMIN_INTERVAL", 2.0)
received: dict[str, list[Any]] = {}


@aw.on_connect
async def connected(sock: Socket) -> None:
    if sock.claims.get("banned"):
        raise Reject("banned")
    if sock.claims.get("welcome"):
        await sock.emit("welcome", {"user": sock.user})
        await sock.join(f"welcomed-{sock.user}")


@aw.on_join
async def may_join(sock: Socket, room: str, meta: Any) -> bool:
    if room.startswith("slow"):  # "slow1500-x": the hook takes 1.5 s (an overloaded node)
        await asyncio.sleep(int(room[4:].split("-", 1)[0]) / 1000)
    return not room.startswith("private-")


@aw.on("echo")
async def echo(sock: Socket, data: Any) -> Any:
    return data


@aw.on("record")
async def record(sock: Socket, data: Any) -> None:
    received.setdefault(sock.user or "", []).append(data)


@aw.on("recorded")
async def recorded(sock: Socket, data: Any) -> list[Any]:
    return received.get(sock.user or "", [])


@aw.on("fail")
async def fail(sock: Socket, data: Any) -> None:
    raise RuntimeError("handler exploded")


@aw.on("ask")
async def ask(sock: Socket, data: Any) -> Any:
    """Call the client back and report what happened."""
    try:
        reply = await sock.call(data["event"], data.get("data"), timeout=data.get("timeout", 2))
    except AckTimeout:
        return {"timeout": True}
    except AckError as exc:
        return {"error": exc.code, "message": exc.message}
    return {"reply": reply}


@aw.on("to_room")
async def to_room(sock: Socket, data: Any) -> None:
    await aw.emit(
        data["event"],
        data.get("data"),
        room=data["room"],
        skip=sock if data.get("skip_self") else None,
    )


@aw.on("to_sid")
async def to_sid(sock: Socket, data: Any) -> None:
    await aw.emit(data["event"], data.get("data"), to=data["sid"])


@aw.on("publish")
async def publish(sock: Socket, data: Any) -> Any:
    """emit() to ``room``, ``user`` or ``to`` with an optional ``id``; the position, or
    how the publish failed."""
    target = {k: data[k] for k in ("room", "user", "to") if k in data}
    try:
        pos = await aw.emit(data["event"], data.get("data"), id=data.get("id"), **target)
    except BrokerUnavailable as exc:
        return {"unavailable": str(exc), "maybe": exc.maybe_published}
    return {"pos": list(pos)}


@aw.on("to_user")
async def to_user(sock: Socket, data: Any) -> None:
    await aw.emit(data["event"], data.get("data"), user=data["user"])


@aw.on("burst")
async def burst(sock: Socket, data: Any) -> None:
    """Send ``n`` numbered events to the caller, yielding now and then."""
    for i in range(data["n"]):
        await sock.emit("n", i)
        if i % 50 == 49:
            await asyncio.sleep(data.get("pause", 0))


@aw.on("owe")
async def owe(sock: Socket, data: Any) -> int:
    """Queue ``n`` events of ``size`` bytes for the caller at once (back-pressure tests)."""
    pad = "x" * data["size"]
    for i in range(data["n"]):
        await sock.emit("big", {"i": i, "p": pad})
    return int(data["n"])


@aw.on("paced")
async def paced(sock: Socket, data: Any) -> int:
    """Send ``n`` numbered events to the caller, ``step`` at a time with ``pause`` seconds
    between; returns the most frames its outbox held unacknowledged meanwhile."""
    sess, most = aw.host.sessions[sock.sid], 0
    for i in range(data["n"]):
        await sock.emit("n", i)
        most = max(most, sess.out_seq - sess.floor + 1)
        if i % data["step"] == data["step"] - 1:
            await asyncio.sleep(data["pause"])  # a real pause: the client's receipts come
    return most


@aw.on("settled")
async def settled(sock: Socket, data: Any) -> float | None:
    """Seconds until everything sent to the caller before this call was acknowledged,
    watched for at most ``data`` seconds (None: it was not)."""
    loop = asyncio.get_running_loop()
    sess, start = aw.host.sessions[sock.sid], loop.time()
    target = sess.out_seq
    while sess.floor - 1 < target and loop.time() - start < float(data):
        await asyncio.sleep(0.02)
    return loop.time() - start if sess.floor - 1 >= target else None


@aw.on("presence")
async def presence(sock: Socket, data: Any) -> Any:
    return aw.presence(data["room"])


@aw.on("members")
async def members(sock: Socket, data: Any) -> Any:
    """Presence across every node (the Redis registry when clustered)."""
    return await aw.members(data["room"])


@aw.on("call_sid")
async def call_sid(sock: Socket, data: Any) -> Any:
    """Call any session, on any node, and report what happened."""
    try:
        reply = await aw.call(data["sid"], data["event"], data.get("data"), data.get("timeout", 2))
    except AckTimeout:
        return {"timeout": True}
    except AckError as exc:
        return {"error": exc.code, "message": exc.message}
    except Disconnected as exc:
        return {"gone": str(exc)}
    return {"reply": reply}


@aw.on("stats")
async def stats(sock: Socket, data: Any) -> Any:
    return aw.host.stats()


@aw.on("last_close")
async def last_close(sock: Socket, data: Any) -> Any:
    """How the last connection of session ``data`` (a sid) was closed: ``{"close": [code,
    reason] or None, "attached": bool}``; None if the session is not here."""
    sess = aw.host.sessions.get(data)
    if sess is None:
        return None
    close = None if sess.last_close is None else list(sess.last_close)
    return {"close": close, "attached": sess.connection is not None}


@aw.on("to_all")
async def to_all(sock: Socket, data: Any) -> None:
    await aw.emit(data["event"], data.get("data"), namespace=data.get("namespace", "/"))


@aw.on("whereami", namespace="/other")
async def whereami(sock: Socket, data: Any) -> str:
    return sock.namespace


@aw.on("to_all", namespace="/other")
async def to_all_other(sock: Socket, data: Any) -> None:
    await to_all(sock, data)


@aw.on("sleep")
async def sleep(sock: Socket, data: Any) -> str:
    await asyncio.sleep(float(data))
    return "slept"


async def app(scope: Any, receive: Any, send: Any) -> None:
    """The test app; AW_BREAK lists transports to make fail although negotiate offers
    them (the way a proxy breaks them): WebSocket upgrades refused, SSE answered 502.
    ``websocket-silent`` and ``sse-silent`` black-hole them instead (a 101, or the
    stream's headers, then nothing): only the client's connect timeout notices."""
    broken = os.environ.get("AW_BREAK", "").split(",")
    path = scope.get("path", "")
    if scope["type"] == "websocket" and "websocket-silent" in broken:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["type"] == "http" and path.endswith("/sse") and "sse-silent" in broken:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    if scope["type"] == "websocket" and "websocket" in broken:
        await receive()
        await send({"type": "websocket.close", "code": 1008})
        return
    if scope["type"] == "http" and path.endswith("/sse") and "sse" in broken:
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b"bad gateway"})
        return
    await aw(scope, receive, send)


app.anywire = aw  # type: ignore[attr-defined]  # lets the CLI find it for graceful drain
