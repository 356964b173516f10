"""Bodies and first messages that broke the parser (issue #13, items 2 and 3): a frame
whose type field is a list or a map, and a negotiate body of deeply nested arrays. Each
gets its documented JSON error (400/4502, a WebSocket close 4502), never a 500, plain
text or a traceback in the log; on every transport."""

from __future__ import annotations

import json

import httpx
import websockets

from tests.e2e.raw import RawConn

from .conftest import Server, make_token

NESTED = b"[" * 2000 + b"]" * 2000


def _log_tail(server: Server, since: int) -> str:
    return server.log.read_bytes()[since:].decode(errors="replace")


async def test_a_deeply_nested_negotiate_body_is_a_400_before_any_credential(
    server: Server,
) -> None:
    start = server.log.stat().st_size
    async with httpx.AsyncClient(timeout=10) as http:
        for body in (NESTED, b'{"since":' + NESTED + b"}"):
            r = await http.post(server.url + "/anywire/negotiate", content=body,
                                headers={"content-type": "application/json"})  # fmt: skip
            assert r.status_code == 400, r.text
            assert r.json()["code"] == 4502
    assert "Traceback" not in _log_tail(server, start)


async def test_a_frame_whose_type_is_a_list_or_a_map_is_refused_cleanly(
    server: Server, transport: str
) -> None:
    start = server.log.stat().st_size
    conn = RawConn(server.url, transport, make_token(f"typed-{transport}"))
    try:
        await conn.open()
        for bad in ({"t": ["event"], "s": 1, "e": "x"}, [{"t": {"a": 1}, "s": 1}]):
            answer = await conn.send_raw(json.dumps(bad))
            if transport == "websocket":
                frame = await conn.recv()
                assert frame.get("t") in ("error", "close", "_closed"), frame
            else:
                assert answer is not None and answer.status_code == 400, answer
                assert answer.json()["code"] == 4502
    finally:
        await conn.close()
    assert "Traceback" not in _log_tail(server, start)


async def test_a_first_websocket_message_whose_type_is_a_map_closes_with_4502(
    server: Server,
) -> None:
    start = server.log.stat().st_size
    async with websockets.connect(server.url.replace("http", "ws") + "/anywire/ws") as ws:
        await ws.send('{"t":{"connect":1},"ticket":"x"}')
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            pass
    assert ws.close_code == 4502
    assert "Traceback" not in _log_tail(server, start)
