"""Resume over the WebSocket without negotiate (protocol section 2.2.1), at the protocol
level: one connection per resume, no negotiate reaching the server, the replay exactly
once and in order; every refusal a close code the client can act on; hostile first
frames closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .conftest import Server, make_token, start_server
from .raw import RawConn, numbers


async def _counters(server: Server) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.get("/anywire/metrics")
        r.raise_for_status()
        return dict(r.json())


async def _direct(server: Server, first: Any) -> ClientConnection:
    """A WebSocket opened with ``first`` as its first message (a frame, or raw text)."""
    ws = await connect(server.url.replace("http", "ws") + "/anywire/ws", max_size=None)
    await ws.send(first if isinstance(first, str) else json.dumps(first))
    return ws


async def _frames(ws: ClientConnection, until: int) -> list[dict[str, Any]]:
    """Frames received until ``until`` numbers ``n`` have come (pings answered)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while sum(1 for f in out if f.get("e") == "n") < until:
            message = json.loads(await ws.recv())
            for frame in message if isinstance(message, list) else [message]:
                if frame.get("t") == "ping":
                    await ws.send(json.dumps({"t": "pong"}))
                elif frame.get("t") not in ("rx", "pong"):
                    out.append(frame)
    return out


async def _close_of(ws: ClientConnection) -> tuple[int | None, str]:
    """The close code and reason the server ended ``ws`` with (bounded)."""
    async with asyncio.timeout(10):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")


async def _dropped(server: Server, user: str, n: int) -> tuple[RawConn, list[int], int]:
    """A WebSocket session that asked for ``n`` numbers and vanished after seeing three."""
    conn = RawConn(server.url, "websocket", make_token(user))
    await conn.open()
    await conn.send({"t": "event", "s": 1, "id": 1, "e": "burst", "d": {"n": n}})
    seen, last = await numbers(conn, 3)
    await conn.close()  # no goodbye: the session stays resumable
    return conn, seen, last


async def test_negotiate_advertises_it(server: Server) -> None:
    conn = RawConn(server.url, "websocket", make_token("advertised"))
    r = await conn.negotiate(transports=["websocket"])
    assert r.json()["ws_resume"] is True
    r = await conn.negotiate(transports=["sse", "longpoll"])  # no WebSocket offered
    assert "ws_resume" not in r.json()
    await conn.http.aclose()


async def test_a_direct_resume_replays_exactly_once_with_no_negotiate(server: Server) -> None:
    user = "direct"
    conn, seen, last = await _dropped(server, user, 10)
    before = await _counters(server)
    ws = await _direct(
        server, {"t": "resume", "token": conn.neg["token"], "last": last, "auth": make_token(user)}
    )
    try:
        frames = await _frames(ws, 10 - len(seen))
        hello = frames[0]
        assert hello["t"] == "hello" and hello["recovered"] is True
        assert hello["sid"] == conn.neg["sid"] and hello["seq"] == last and hello["last"] == 1
        rest = [f["d"] for f in frames if f.get("e") == "n"]
        assert seen + rest == list(range(10))  # exactly once, in order
        seqs = [f["s"] for f in frames if "s" in f]
        assert seqs == list(range(last + 1, last + 1 + len(seqs)))
        # The session goes on over it: a request is answered.
        await ws.send(json.dumps({"t": "event", "s": 2, "id": 2, "e": "echo", "d": "x"}))
        async with asyncio.timeout(10):
            while True:
                message = json.loads(await ws.recv())
                acks = [f for f in (message if isinstance(message, list) else [message])
                        if f.get("t") == "ack" and f.get("id") == 2]  # fmt: skip
                if acks:
                    assert acks[0]["d"] == "x"
                    break
                if isinstance(message, dict) and message.get("t") == "ping":
                    await ws.send(json.dumps({"t": "pong"}))
    finally:
        await ws.close()
    after = await _counters(server)
    assert after.get("negotiations", 0) == before.get("negotiations", 0)  # none reached it
    assert after["ws_resumes"] == before.get("ws_resumes", 0) + 1


async def test_the_hello_says_when_the_resumes_credential_expires(server: Server) -> None:
    """As negotiate's answer does (``expires_in``, ms): the client plans its in-band
    refresh from it. It is the credential sent with the resume that counts (60 s here),
    not the one negotiate saw (600 s)."""
    user = "direct-expiry"
    conn, seen, last = await _dropped(server, user, 4)
    assert 595_000 <= conn.neg["expires_in"] <= 600_000
    ws = await _direct(
        server,
        {"t": "resume", "token": conn.neg["token"], "last": last, "auth": make_token(user, ttl=60)},
    )
    try:
        hello = (await _frames(ws, 4 - len(seen)))[0]
    finally:
        await ws.close()
    assert hello["t"] == "hello" and hello["recovered"] is True
    assert 55_000 <= hello["expires_in"] <= 60_000, hello


async def test_an_unknown_session_is_sent_to_negotiate(server: Server) -> None:
    user = "direct-late"
    conn, _, last = await _dropped(server, user, 3)
    first = {"t": "resume", "token": conn.neg["token"], "last": last, "auth": make_token(user)}
    # Wait (bounded) until the server has forgotten the session: its resume window is
    # 3 s in the test app (asking negotiate does not keep it).
    back = RawConn(server.url, "websocket", make_token(user))
    try:
        async with asyncio.timeout(15):
            while (await back.negotiate(resume=conn.neg["token"])).json()["resumable"]:
                await asyncio.sleep(0.25)
        code, reason = await _close_of(await _direct(server, first))
        assert code == 4007 and "negotiate" in reason
        # Negotiate with resume, as a client does on 4007: a fresh session, same sid.
        hello = await back.open(resume_last=last, resume=conn.neg["token"])
        assert hello["recovered"] is False and hello["sid"] == conn.neg["sid"]
    finally:
        await back.close()


async def _hello(ws: ClientConnection) -> bool:
    """Whether the first message is a recovered hello (False: the server closed)."""
    try:
        async with asyncio.timeout(10):
            message = json.loads(await ws.recv())
    except ConnectionClosed:
        return False
    frame = message[0] if isinstance(message, list) else message
    return bool(frame.get("t") == "hello" and frame.get("recovered") is True)


async def test_a_resume_point_past_the_outbox_is_sent_to_negotiate(server: Server) -> None:
    user = "direct-ahead"
    conn, _, last = await _dropped(server, user, 3)
    first = {"t": "resume", "token": conn.neg["token"], "last": last + 1000,
             "auth": make_token(user)}  # fmt: skip
    code, _ = await _close_of(await _direct(server, first))
    assert code == 4007


async def test_bad_credentials_are_refused_clearly(server: Server) -> None:
    user = "direct-auth"
    conn, _, last = await _dropped(server, user, 3)
    token = conn.neg["token"]
    before = await _counters(server)
    cases = [
        ({"auth": make_token(user) + "x"}, 4501),  # forged signature: terminal
        ({"auth": make_token(user, ttl=-60)}, 4501),  # expired credential
        ({}, 4501),  # none, on a server that needs one
        ({"auth": make_token("thief")}, 4007),  # valid, but another user's session
        ({"token": token[:-2] + "AA", "auth": make_token(user)}, 4007),  # forged session token
    ]
    for extra, want in cases:
        first = {"t": "resume", "token": token, "last": last, **extra}
        code, _ = await _close_of(await _direct(server, first))
        assert code == want, (extra, code)
    after = await _counters(server)
    assert after["auth_refused"] >= before.get("auth_refused", 0) + 3
    # None of them harmed the session: its owner still resumes it.
    ws = await _direct(server, {"t": "resume", "token": token, "last": last,
                                "auth": make_token(user)})  # fmt: skip
    try:
        assert await _hello(ws)
    finally:
        await ws.close()


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ({"t": "resume", "token": 5, "last": 0}, 4502),
        ({"t": "resume", "token": "", "last": 0}, 4502),
        ({"t": "resume", "token": "a" * 5000, "last": 0}, 4502),
        ({"t": "resume", "token": ["a"], "last": 0}, 4502),
        ({"t": "resume", "token": "a.b", "last": -1}, 4502),
        ({"t": "resume", "token": "a.b", "last": "3"}, 4502),
        ({"t": "resume", "token": "a.b", "last": 2**53}, 4502),
        ({"t": "resume", "token": "a.b"}, 4502),
        ({"t": "resume", "token": "a.b", "last": 0, "auth": 7}, 4502),
        ({"t": "resume", "token": "a.b", "last": 0, "auth": ""}, 4502),
        ({"t": "resume", "token": "a.b", "last": 0, "auth": "x" * 17000}, 4503),  # > frame
        ({"t": "resume", "token": "ü.ü", "last": 0}, 4007),  # not ASCII: not a token
        ({"t": "resume", "token": "a.b", "last": 0}, 4007),  # well-formed, unsigned
        ('[{"t": "resume", "token": "a.b", "last": 0}, {"t": "ping"}]', 4503),
        ('{"t": "resume", "token": "a.b", "last": 0', 4502),
    ],
)
async def test_hostile_first_frames_are_closed(server: Server, first: Any, code: int) -> None:
    got, _ = await _close_of(await _direct(server, first))
    assert got == code


@pytest.fixture(scope="module")
def rated() -> Iterator[Server]:
    """A server whose per-address negotiate bucket is small (6, refilled 0.5/s)."""
    srv = start_server({"AW_NEGOTIATE_RATE": "0.5", "AW_NEGOTIATE_BURST": "6"})
    yield srv
    srv.stop()


async def test_a_flood_of_direct_resumes_is_charged_to_the_address(rated: Server) -> None:
    user = "direct-flood"
    conn, _, last = await _dropped(rated, user, 3)  # one negotiate: 5 tokens left
    first = {"t": "resume", "token": conn.neg["token"], "last": last, "auth": make_token(user)}
    codes: list[tuple[int | None, str]] = []
    for _ in range(8):
        ws = await _direct(rated, first)
        if await _hello(ws):
            codes.append((0, ""))
            await ws.close()
        else:
            codes.append(await _close_of(ws))
    # Five served (the burst left), then refused; each refusal is held back a second,
    # in which the bucket may refill one more (0.5/s).
    assert [c for c, _ in codes[:6]] == [0, 0, 0, 0, 0, 4008], codes
    refused = [(c, r) for c, r in codes if c != 0]
    assert len(refused) >= 2, codes
    for code, reason in refused:
        assert code == 4008 and reason.endswith(("retry_after=1", "retry_after=2")), reason
    # The same bucket as negotiate's: once negotiates have spent it, a direct resume is
    # refused too.
    other = RawConn(rated.url, "websocket", make_token(user))
    try:
        statuses = [(await other.negotiate()).status_code for _ in range(8)]
        assert 429 in statuses, statuses
    finally:
        await other.http.aclose()
    code, reason = await _close_of(await _direct(rated, first))
    assert code == 4008 and "retry_after=" in reason
