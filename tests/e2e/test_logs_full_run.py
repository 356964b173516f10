"""A full run read from the logs (issue #14): one ``anywire serve --log-level debug
--log-format json`` with uvicorn's access log on, real traffic on each transport through
a recording TCP proxy, then the server's stderr is read.

The traffic: two clients in a room, acks both ways, a dropped connection resumed, an
in-band token refresh, a negotiate with a bad token and one with an expired token, one
reporting a failed transport and one from a foreign Origin, and a connection that
floods. Every JWT the test minted, and every ticket and session token
that crossed the wire (negotiate answers, SSE and poll URLs, ``X-Anywire-Token``
headers), is looked for in the server's output: none may be there. The connection log's
events must be: each line JSON, with its fields as keys.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from anywire.clients.python import Client

from ..netfault import FaultProxy
from .conftest import Server, make_token, start_server
from .raw import RawConn

WAIT = 20.0
FORGER_KEY = "not-the-server-secret-0123456789abcdef"
FLOOD_RATE, FLOOD_BURST = 100, 200  # well above what the clients send, well below a flood


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, FaultProxy]]:
    """The server (DEBUG, JSON lines, access log on) and a recording proxy in front."""
    log = tmp_path_factory.mktemp("logs") / "server.log"
    env = {"AW_FLOOD_RATE": str(FLOOD_RATE), "AW_FLOOD_BURST": str(FLOOD_BURST)}
    srv = start_server(env, log=log, args=("--log-level", "debug", "--log-format", "json"))
    proxy = FaultProxy(srv.port, record=True)
    yield srv, proxy
    proxy.close()
    srv.stop()


def _records(log: Path, start: int) -> list[dict[str, Any]]:
    """Every line the server wrote since ``start``, each a JSON object."""
    with log.open("rb") as f:
        f.seek(start)
        lines = f.read().decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def _until(log: Path, start: int, done: Any) -> list[dict[str, Any]]:
    """The records since ``start`` once ``done(records)`` holds (bounded wait: the
    server writes a disconnect line when it notices, after the client is gone)."""
    deadline = time.monotonic() + WAIT
    while True:
        records = _records(log, start)
        if done(records) or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.05)


def _events(records: list[dict[str, Any]], event: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        r for r in records
        if r.get("logger") == "anywire.conn" and r.get("event") == event
        and all(r.get(k) == v for k, v in fields.items())
    ]  # fmt: skip


_ON_THE_WIRE = [
    re.compile(rb'"(?:ticket|token)"\s*:\s*"([^"]+)"'),  # negotiate answers (JSON)
    re.compile(rb"[?&](?:ticket|token)=([^&\s\"]+)"),  # SSE and poll URLs
    re.compile(rb"(?i)\r\nauthorization: bearer ([^\r\n]+)"),
    re.compile(rb"(?i)\r\nx-anywire-token: ([^\r\n]+)"),
]


def _credentials(wire: bytes) -> set[str]:
    return {m.decode() for pattern in _ON_THE_WIRE for m in pattern.findall(wire)}


def _assert_absent(secrets: set[str], text: str) -> None:
    """Neither a credential nor its signature (a truncated line could keep the end)."""
    for secret in secrets:
        signature = secret.rsplit(".", 1)[-1]
        assert secret not in text, f"credential in the server log: {secret[:12]}..."
        if len(signature) >= 16:
            assert signature not in text, f"signature in the server log: {signature[:8]}..."


async def _flood(url: str, transport: str, token: str) -> RawConn:
    """A connection that sends far past its flood budget: closed with 4008 (WebSocket)
    or answered 429 (HTTP)."""
    conn = RawConn(url, transport, token)
    await conn.open()
    frames = [{"t": "event", "s": i, "e": "record", "d": i} for i in range(1, 2 * FLOOD_BURST)]
    for i in range(0, len(frames), 50):
        r = await conn.send_raw(json.dumps(frames[i : i + 50]))
        if r is not None and r.status_code == 429:
            return conn
    if transport == "websocket":
        while (frame := await conn.recv(timeout=WAIT)).get("t") not in ("close", "_closed"):
            pass
        assert frame.get("c", frame.get("code")) == 4008, frame
        # And hang up: through the proxy, a graceful close would wait out websockets'
        # close timeout (10 s) for a server that stopped reading.
        assert conn.ws is not None
        conn.ws.transport.abort()
    return conn


async def test_a_full_run_logs_its_events_and_no_credential(
    logged: tuple[Server, FaultProxy], transport: str
) -> None:
    server, proxy = logged
    start = server.log.stat().st_size
    user, peer, flooder = f"logged-{transport}", f"peer-{transport}", f"flooder-{transport}"
    room = f"logs-{transport}"
    other = "longpoll" if transport == "websocket" else "websocket"
    minted: list[str] = []

    def token(sub: str, ttl: float) -> Any:
        def source() -> str:
            minted.append(make_token(sub, ttl=ttl))
            return minted[-1]

        return source

    # A 3 s token: the client refreshes it in-band at 80 % of its life.
    a = Client(proxy.url, token=token(user, 3), transports=(transport,), backoff_base=0.05,
               backoff_max=0.2)  # fmt: skip
    b = Client(proxy.url, token=token(peer, 600), transports=(transport,))
    hellos: asyncio.Queue[str | None] = asyncio.Queue()
    a.on_connect(lambda: hellos.put_nowait(a.sid))
    news: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    a.on("news")(lambda data: None if news.done() else news.set_result(data))
    a.on("question")(lambda data: {"answer": data})
    flood: RawConn | None = None
    try:
        async with asyncio.timeout(WAIT):
            await a.connect()
            await b.connect()
            sid = await hellos.get()
            # Rooms, and acks both ways.
            await a.join(room)
            await b.join(room)
            await b.emit("to_room", {"room": room, "event": "news", "data": 1})
            assert await news == 1
            assert await a.call("echo", "hi") == "hi"
            asked = await a.call("ask", {"event": "question", "data": 2})
            assert asked == {"reply": {"answer": 2}}
            # A drop, and the resume of the same session.
            await a.drop_connection()
            assert await hellos.get() == sid and a.recovered is True
            # The in-band refresh (its deadline is the token's, not a sync).
            assert a.refresher is not None
            while a.refresher.refreshed < 1:
                await asyncio.sleep(0.05)
            assert await a.call("echo", "still") == "still"
            # Refused credentials: a wrong signature, then an expired token.
            forged = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60}, FORGER_KEY)
            expired = make_token(user, ttl=-30)
            minted += [forged, expired]
            async with httpx.AsyncClient(base_url=proxy.url) as http:
                for bad in (forged, expired):
                    r = await http.post(
                        "/anywire/negotiate",
                        json={"v": 1, "transports": [transport]},
                        headers={"Authorization": f"Bearer {bad}"},
                    )
                    assert r.status_code == 401
                # A client reporting that another transport failed (a fallback), and a
                # negotiate from an Origin the server does not allow (a refusal).
                minted.append(make_token(peer))
                bearer = {"Authorization": f"Bearer {minted[-1]}"}
                failures = {other: "buffered"}
                r = await http.post(
                    "/anywire/negotiate",
                    json={"v": 1, "transports": [transport], "failures": failures},
                    headers=bearer,
                )
                assert r.status_code == 200
                r = await http.post(
                    "/anywire/negotiate",
                    json={"v": 1, "transports": [transport]},
                    headers={**bearer, "Origin": "http://elsewhere.example"},
                )
                assert r.status_code == 403
            minted.append(make_token(flooder))
            flood = await _flood(proxy.url, transport, minted[-1])
    finally:
        await a.close()
        await b.close()
        if flood is not None:
            await flood.close()

    def complete(records: list[dict[str, Any]]) -> bool:
        return len(_events(records, "disconnect", user=user)) >= 2 and bool(
            _events(records, "disconnect", user=peer)
        )

    records = await _until(server.log, start, complete)
    text = server.log.read_text()

    # -- no credential, anywhere in the server's output --------------------------------
    wire = _credentials(bytes(proxy.recorded))
    tickets = {s for s in wire if s not in minted}
    assert len(tickets) >= 4, "the test saw too few tickets and session tokens on the wire"
    assert all(jwt in wire for jwt in minted[:2])  # the Authorization headers were seen
    _assert_absent(wire | set(minted), text)

    # -- the connection log's events -------------------------------------------------------
    conn = {"transport": transport, "user": user, "sid": sid}
    assert len(_events(records, "connect", resumed=False, **conn)) == 1, records
    assert len(_events(records, "connect", resumed=True, **conn)) == 1
    assert _events(records, "connect", transport=transport, user=peer)
    (fresh,) = _events(records, "connect", resumed=False, **conn)
    assert fresh["ip"] == "127.0.0.1" and fresh["namespace"] == "/"
    ended = _events(records, "disconnect", **conn)
    assert len(ended) == 2
    for line in ended:
        assert isinstance(line["code"], int) and line["duration"] > 0
        assert line["frames_in"] > 0 and line["frames_out"] > 0
    assert ended[-1]["frames_in"] >= 1  # after the resume: the refresh and an echo
    assert _events(records, "resume", outcome="recovered")
    assert {r["reason"] for r in _events(records, "auth_failed")} >= {"signature", "expired"}
    assert _events(records, "fallback", reason="buffered", **{"from": other, "to": transport})
    (refused,) = _events(records, "negotiate", outcome="origin")
    assert refused["level"] == "WARNING"
    flooded = {"transport": transport, "user": flooder}
    assert len(_events(records, "flood", **flooded)) == 1  # once, however many refusals
    if transport == "websocket":  # closed with 4008; HTTP answers 429 and keeps it open
        assert _events(records, "closed", reason="flood", **flooded)
        assert _events(records, "disconnect", code=4008, **flooded)

    # -- and uvicorn's access log, scrubbed --------------------------------------------
    access = [r["message"] for r in records if r["logger"] == "uvicorn.access"]
    assert any("/anywire/negotiate" in line for line in access)
    if transport != "websocket":  # the ticket is in these URLs
        opened = "/anywire/sse?ticket=***" if transport == "sse" else "/anywire/poll?ticket=***"
        assert any(opened in line for line in access), access


async def test_the_text_format_says_the_same_in_one_line_each(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``--log-format text`` (the default): the same events as ``EVENT key=value`` lines,
    uvicorn's access log scrubbed (an SSE client: its ticket is in the URL)."""
    log = tmp_path_factory.mktemp("text") / "server.log"
    server = start_server({}, log=log, args=("--log-level", "info"))
    try:
        client = Client(server.url, token=make_token("texter"), transports=("sse",))
        async with asyncio.timeout(WAIT):
            await client.connect()
            sid = client.sid
            assert await client.call("echo", 1) == 1
            await client.close()

        def ended(text: str) -> bool:
            return f"disconnect sid={sid} " in text

        deadline = time.monotonic() + WAIT
        while not ended(text := log.read_text()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        server.stop()
    lines = text.splitlines()
    connect = [line for line in lines if line.startswith("INFO anywire.conn connect ")]
    assert connect == [
        f"INFO anywire.conn connect sid={sid} transport=sse namespace=/ user=texter "
        "origin=- ip=127.0.0.1 resumed=false"
    ]
    (disconnect,) = [line for line in lines if line.startswith("INFO anywire.conn disconnect ")]
    assert re.search(r" code=\d+ duration=[\d.]+ frames_in=[1-9]\d* frames_out=[1-9]\d*$",
                     disconnect), disconnect  # fmt: skip
    assert any("GET /anywire/sse?ticket=*** HTTP/1.1" in line for line in lines), lines
    assert "ticket=ey" not in text and "ticket=" + "*" * 3 in text
