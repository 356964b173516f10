"""Bad input gets a clear error and loses nothing: auth, origins, malformed and oversized
frames, unknown sessions, floods. Raw protocol, every transport."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import jwt
import msgpack
import pytest

from .conftest import AUDIENCE, SECRET, Server, make_token
from .raw import RawConn


def _negotiate(server: Server, token: str | None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(server.url + "/anywire/negotiate", json={}, headers=headers, timeout=5)


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        jwt.encode(
            {"sub": "a", "exp": int(time.time()) + 60, "aud": AUDIENCE},
            "wrong-secret-0123456789abcdef0123",
        ),
        jwt.encode({"sub": "a", "exp": int(time.time()) - 60, "aud": AUDIENCE}, SECRET),
        jwt.encode(
            {"sub": "a", "exp": int(time.time()) + 60, "aud": AUDIENCE}, None, algorithm="none"
        ),
        jwt.encode({"sub": "a", "exp": int(time.time()) + 60, "aud": "someone-else"}, SECRET),
        jwt.encode({"sub": "a", "aud": AUDIENCE}, SECRET),
    ],
    ids=["missing", "garbage", "bad-signature", "expired", "alg-none", "wrong-audience", "no-exp"],
)
def test_negotiate_rejects_bad_credentials(server: Server, token: str | None) -> None:
    r = _negotiate(server, token)
    assert r.status_code == 401
    assert r.json()["code"] == 4501


def test_negotiate_accepts_a_good_token_and_offers_every_transport(server: Server) -> None:
    r = _negotiate(server, make_token())
    assert r.status_code == 200
    body = r.json()
    assert [t["name"] for t in body["transports"]] == ["websocket", "sse", "longpoll"]
    assert body["ticket"] and body["token"] and body["sid"]


def test_failed_transport_is_offered_last(server: Server) -> None:
    r = httpx.post(
        server.url + "/anywire/negotiate",
        json={"failed": ["websocket"]},
        headers={"Authorization": f"Bearer {make_token()}"},
    )
    assert [t["name"] for t in r.json()["transports"]] == ["sse", "longpoll", "websocket"]


def test_wrong_origin_rejected_on_negotiate(server: Server) -> None:
    r = _negotiate(server, make_token(), Origin="http://evil.example")
    assert r.status_code == 403
    ok = _negotiate(server, make_token(), Origin="http://allowed.example")
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://allowed.example"


def test_cors_preflight(server: Server) -> None:
    good = httpx.options(server.url + "/anywire/send", headers={"Origin": "http://allowed.example"})
    assert good.status_code == 204
    assert "x-anywire-token" in good.headers["access-control-allow-headers"]
    bad = httpx.options(server.url + "/anywire/send", headers={"Origin": "http://evil.example"})
    assert bad.status_code == 403


async def test_wrong_origin_rejected_on_every_transport(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token())
    neg = (await conn.negotiate()).json()
    evil = {"Origin": "http://evil.example"}
    try:
        if transport == "websocket":
            from websockets.asyncio.client import connect
            from websockets.exceptions import InvalidStatus

            with pytest.raises(InvalidStatus) as info:
                await connect(
                    server.url.replace("http", "ws") + "/anywire/ws", additional_headers=evil
                )
            assert info.value.response.status_code == 403
        else:
            path = "/anywire/sse" if transport == "sse" else "/anywire/poll"
            r = await conn.http.get(path, params={"ticket": neg["ticket"]}, headers=evil)
            assert r.status_code == 403
    finally:
        await conn.close()


async def test_ticket_is_single_use(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token())
    try:
        hello = await conn.open()
        assert hello["t"] == "hello" and hello["recovered"] is False
        again = RawConn(server.url, transport, make_token())
        again.neg = conn.neg
        if transport == "websocket":
            from websockets.asyncio.client import connect

            async with connect(server.url.replace("http", "ws") + "/anywire/ws") as ws:
                await ws.send(json.dumps({"t": "connect", "ticket": conn.neg["ticket"]}))
                await _drain(ws)
                assert ws.close_code == 4007
        else:
            path = "/anywire/sse" if transport == "sse" else "/anywire/poll"
            r = await conn.http.get(path, params={"ticket": conn.neg["ticket"]})
            assert r.status_code == 410
            assert r.json()["code"] == 4007 if transport == "sse" else r.json()[0]["c"] == 4007
        await again.http.aclose()
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "payload",
    [
        os.urandom(64),
        msgpack.packb({"t": "event", "s": 1, "e": "echo", "d": "x" * 50})[:-10],
        b'{"t":"event","s":"1","e":"echo"}',
        b'{"t":"event","s":1,"e":123}',
        b'{"t":"ack","s":1,"id":1,"ok":"yes"}',
        b'{"t":"event","s":1,"id":4,"e":["not","a","name"]}',
        b'{"t":"teleport"}',
        b"[1,2,3]",
        b'"just a string"',
    ],
    ids=[
        "random",
        "truncated-msgpack",
        "s-string",
        "e-int",
        "ok-string",
        "bad-event-with-id",
        "unknown-type",
        "array-of-ints",
        "string",
    ],
)
async def test_malformed_frames_answered_and_server_unharmed(
    server: Server, transport: str, payload: bytes
) -> None:
    conn = RawConn(server.url, transport, make_token())
    # A rejected frame that still carried a valid sequence number counts as consumed, so
    # the frames after it are not refused as a gap; one with an ack id gets an error ack.
    consumed = b'"s":1' in payload
    try:
        await conn.open()
        if transport == "websocket":
            await conn.send_raw(payload)
            error = await conn.recv()
            assert error["t"] == "error" and error["c"] == 4502, error
        else:
            r = await conn.send_raw(payload)
            assert r is not None and r.status_code == 400
            assert r.json()["code"] == 4502
        if b'"id":4' in payload:
            refused = await conn.recv()
            assert refused["t"] == "ack" and refused["id"] == 4 and refused["ok"] is False
            assert refused["err"]["code"] == "bad_request"
        # The same connection still works and nothing was lost.
        seq = 2 if consumed else 1
        await conn.send({"t": "event", "s": seq, "id": 7, "e": "echo", "d": "still here"})
        ack = await conn.recv()
        assert ack == {"t": "ack", "s": ack["s"], "id": 7, "ok": True, "d": "still here"}
    finally:
        await conn.close()


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
async def test_valid_frames_before_a_bad_one_are_processed(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token())
    try:
        await conn.open()
        r = await conn.send(
            [{"t": "event", "s": 1, "id": 1, "e": "echo", "d": 1}, {"t": "event", "s": "bad"}]
        )
        if transport == "websocket":
            first, second = await conn.recv(), await conn.recv()
            error, ack = (first, second) if first["t"] == "error" else (second, first)
            assert error["c"] == 4502
        else:
            assert r is not None and r.status_code == 400
            ack = await conn.recv()
        assert ack["id"] == 1 and ack["d"] == 1
    finally:
        await conn.close()


async def test_oversized_frame_rejected_with_its_code(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token())
    try:
        await conn.open()
        big = '{"t":"event","s":1,"e":"echo","d":"%s"}' % ("x" * 20000)
        if transport == "websocket":
            await conn.send_raw(big)
            frame = await conn.recv()
            assert frame["t"] == "close" and frame["c"] == 4503
            closed = await conn.recv()
            assert closed == {"t": "_closed", "code": 4503}
        else:
            r = await conn.send_raw(big)
            assert r is not None and r.status_code == 413 and r.json()["code"] == 4503
            await conn.send({"t": "event", "s": 1, "id": 2, "e": "echo", "d": "ok"})
            assert (await conn.recv())["d"] == "ok"
    finally:
        await conn.close()


async def test_unknown_session_token_is_gone(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post(
            "/anywire/send", content=b"{}", headers={"X-Anywire-Token": "forged.token"}
        )
        assert r.status_code == 410 and r.json()["code"] == 4007
        r = await http.get("/anywire/poll", headers={"X-Anywire-Token": "forged.token"})
        assert r.status_code == 410 and r.json()[0]["c"] == 4007
        r = await http.get("/anywire/sse", params={"ticket": "forged.ticket"})
        assert r.status_code == 410


async def test_first_websocket_frame_must_be_connect(server: Server) -> None:
    from websockets.asyncio.client import connect

    async with connect(server.url.replace("http", "ws") + "/anywire/ws") as ws:
        await ws.send('{"t":"event","s":1,"e":"echo"}')
        await _drain(ws)
        assert ws.close_code == 4502


async def test_connect_hook_can_refuse(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token(banned=True))
    try:
        if transport == "websocket":
            assert await conn.open() == {"t": "_closed", "code": 4505}
        else:
            with pytest.raises(httpx.HTTPStatusError) if transport == "longpoll" else _no_raise():
                frame = await conn.open()
                assert frame["t"] == "_http" and frame["status"] == 403
    finally:
        await conn.close()


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


async def _drain(ws: object) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async with asyncio.timeout(5):
            async for _ in ws:  # type: ignore[attr-defined]
                pass
    except ConnectionClosed:
        pass


async def test_frames_sent_by_the_connect_hook_follow_the_hello(
    server: Server, transport: str
) -> None:
    user = f"welcomed-{transport}"
    conn = RawConn(server.url, transport, make_token(user, welcome=True))
    try:
        hello = await conn.open()
        assert hello["seq"] == 0
        welcome = await conn.recv()
        assert welcome["t"] == "event" and welcome["e"] == "welcome" and welcome["s"] == 1
        await conn.send(
            {"t": "event", "s": 1, "id": 1, "e": "presence", "d": {"room": f"welcomed-{user}"}}
        )
        ack = await conn.recv()
        assert [m["user"] for m in ack["d"]] == [user]
    finally:
        await conn.close()


async def test_batch_over_max_batch_is_refused(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token())
    try:
        await conn.open()
        frames = [{"t": "ping"} for _ in range(101)]  # max_batch is 100
        r = await conn.send(frames)
        if transport == "websocket":
            error = await conn.recv()
            assert error["t"] == "error" and error["c"] == 4503
        else:
            assert r is not None and r.status_code == 413 and r.json()["code"] == 4503
        await conn.send({"t": "event", "s": 1, "id": 3, "e": "echo", "d": "after"})
        assert (await conn.recv())["d"] == "after"
    finally:
        await conn.close()
