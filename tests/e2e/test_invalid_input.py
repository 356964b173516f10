"""Every field of every frame and every HTTP input checked before use (issue #13, items 2,
3 and 6): a wrong-typed or out-of-range field, a value outside the shared data model or
too deep a nesting gets its documented error (WebSocket: an ``error`` frame 4502; HTTP:
400 with a JSON body naming 4502), never a 500 or plain text; it logs exactly one line
and no traceback, is charged to the session's flood budget, and the session goes on.
On every transport."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from anywire.core.closecodes import CloseCode

from .conftest import Server, make_token, start_server
from .raw import RawConn

# Each one message; none carries a sequence number the session would take (s is 0 or
# invalid), so they can be sent in any order.
BAD: list[str] = [
    json.dumps({"t": ["event"], "s": 1, "e": "x"}),
    json.dumps({"t": {"event": 1}}),
    json.dumps({"t": None}),
    json.dumps({"t": "event", "s": "1", "e": "x"}),
    json.dumps({"t": "event", "s": 0, "e": 5}),
    json.dumps({"t": "event", "s": 0, "e": "x", "id": -1}),
    json.dumps({"t": "event", "s": 0, "e": "x", "o": {"a": 1}}),
    json.dumps({"t": "ack", "s": 0, "id": "x", "ok": True}),
    json.dumps({"t": "ack", "s": 0, "id": 1, "ok": False, "err": [1]}),
    json.dumps({"t": "join", "s": 0, "id": 1, "r": ["room"]}),
    json.dumps({"t": "join", "s": 0, "id": 1, "r": "x", "since": {"a": 1}}),
    json.dumps({"t": "rx", "n": -1}),
    json.dumps({"t": "rx", "n": 2**52}),  # ahead of anything sent
    '{"t":"rx","n":4503599627370496}',  # the same as clients write it (the short path)
    '{"t":"rx","n":01}',  # not JSON; spelled like a receipt
    json.dumps({"t": "connect", "ticket": "x"}),  # only as a first message
    json.dumps([{"t": "ping"}, 7]),
    '{"t":"event","s":0,"e":"x","d":18446744073709551616}',
    '{"t":"event","s":0,"e":"x","d":-9223372036854775809}',
    '{"t":"event","s":0,"e":"x","d":NaN}',
    '{"t":"event","s":0,"e":"x","d":' + "[" * 40 + "]" * 40 + "}",
    "[" * 2000 + "]" * 2000,
    '"a string"',
    "null",
    "{",
]


def _log(server: Server, since: int) -> str:
    return server.log.read_bytes()[since:].decode(errors="replace")


async def _error_frame(conn: RawConn) -> dict[str, Any]:
    while True:
        frame = await conn.recv()
        if frame.get("t") == "error":
            return dict(frame)


async def _refused(conn: RawConn, transport: str, message: str | bytes) -> tuple[int, int]:
    """Send ``message``; (HTTP status or 0 on WebSocket, close code in the answer)."""
    answer = await conn.send_raw(message)
    if transport == "websocket":
        return 0, int((await _error_frame(conn))["c"])
    assert answer is not None
    assert answer.headers["content-type"] == "application/json", answer.text
    return answer.status_code, int(answer.json()["code"])


async def test_each_bad_field_gets_its_documented_error_and_one_log_line(
    server: Server, transport: str
) -> None:
    start = server.log.stat().st_size
    conn = RawConn(server.url, transport, make_token(f"fields-{transport}"))
    try:
        await conn.open()
        for message in BAD:
            status, code = await _refused(conn, transport, message)
            assert code == 4502, message[:80]
            assert status in (0, 400), message[:80]
        if transport != "websocket":  # bytes that are not UTF-8 at all
            status, code = await _refused(conn, transport, b"\xff\xfe{}")
            assert (status, code) == (400, 4502)
        # The session goes on: a well-formed call is answered.
        await conn.send({"t": "event", "s": 1, "id": 1, "e": "echo", "d": "still here"})
        ack = await conn.recv()
        assert ack["t"] == "ack" and ack["d"] == "still here", ack
    finally:
        await conn.close()
    log = _log(server, start)
    assert "Traceback" not in log
    refused = [line for line in log.splitlines() if "anywire: refused" in line]
    expected = len(BAD) + (0 if transport == "websocket" else 1)
    assert len(refused) == expected, "\n".join(refused[:5])


async def test_join_metadata_holding_2_to_the_64_is_answered(
    server: Server, transport: str
) -> None:
    conn = RawConn(server.url, transport, make_token(f"meta-{transport}"))
    try:
        await conn.open()
        bad = '{"t":"join","s":1,"id":1,"r":"lobby","meta":{"n":18446744073709551616}}'
        await conn.send_raw(bad)
        while (ack := await conn.recv())["t"] != "ack":
            assert ack["t"] == "error" and ack["c"] == 4502, ack  # WS: the frame's error
        assert ack["id"] == 1 and ack["ok"] is False and ack["err"]["code"] == "bad_request"
        await conn.send({"t": "join", "s": 2, "id": 2, "r": "lobby", "meta": {"n": 2**63}})
        ack = await conn.recv()
        assert ack["id"] == 2 and ack["ok"] is True, ack
    finally:
        await conn.close()


async def test_malformed_positions_in_urls_and_first_frames_are_4502(
    server: Server, transport: str
) -> None:
    start = server.log.stat().st_size
    conn = RawConn(server.url, transport, make_token(f"last-{transport}"))
    bad_numbers = ["x", "-1", "+1", " 1", "1_0", "1e3", "\u0663", "9" * 17]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for last in bad_numbers:
            ticket = (await conn.negotiate(transports=[transport])).json()["ticket"]
            if transport == "websocket":
                async with websockets.connect(
                    server.url.replace("http", "ws") + "/anywire/ws"
                ) as ws:
                    await ws.send(json.dumps({"t": "resume", "ticket": ticket, "last": last}))
                    with pytest.raises(websockets.ConnectionClosed):
                        await ws.recv()
                assert ws.close_code == 4502
                continue
            path = "/anywire/sse" if transport == "sse" else "/anywire/poll"
            r = await http.get(path, params={"ticket": ticket, "last": last})
            assert r.status_code == 400 and r.json()["code"] == 4502, (last, r.text)
        if transport == "longpoll":
            await conn.open()
            for ack in bad_numbers:
                r = await http.get(
                    "/anywire/poll",
                    params={"ack": ack},
                    headers={"X-Anywire-Token": conn.neg["token"]},
                )
                assert r.status_code == 400 and r.json()["code"] == 4502, (ack, r.text)
    await conn.close()
    log = _log(server, start)
    assert "Traceback" not in log
    refused = [line for line in log.splitlines() if "anywire: refused" in line]
    expected = len(bad_numbers) * (2 if transport == "longpoll" else 1)
    assert len(refused) == expected


@pytest.fixture(scope="module")
def strict() -> Iterator[Server]:
    srv = start_server({"AW_FLOOD_RATE": "1", "AW_FLOOD_BURST": "20"})
    yield srv
    srv.stop()


async def test_invalid_input_spends_the_flood_budget(strict: Server, transport: str) -> None:
    # Issue #13, item 2: 1,000 bad POSTs spent no budget at all.
    conn = RawConn(strict.url, transport, make_token(f"charged-{transport}"))
    try:
        await conn.open()
        answers = []
        for _ in range(40):  # twice the burst
            if transport == "websocket":
                await conn.send_raw('{"t":["event"]}')
                frame = await conn.recv()
                answers.append(frame["c"])
                if frame["t"] == "close":
                    break
            else:
                r = await conn.send_raw('{"t":["event"]}')
                assert r is not None
                answers.append(r.json()["code"])
                if r.status_code != 400:
                    assert r.status_code == 429
                    break
        assert answers[-1] == CloseCode.FLOOD and len(answers) <= 22, answers
        assert set(answers[:-1]) == {4502}
    finally:
        await conn.close()


async def test_negotiate_bodies_are_checked_before_any_credential(server: Server) -> None:
    """Negotiate is the same on every transport (it picks one): its body is checked field
    by field, nesting included, before the Authorization header is looked at."""
    start = server.log.stat().st_size
    deep = "[" * 40 + "]" * 40
    bodies = [
        '{"x":' + deep + "}",  # an unknown key, but nested past max_depth
        '{"v":1,"since":[["room:/:a","e",18446744073709551616]]}',
        '{"v":1,"user_since":["e",9007199254740992]}',
        '{"v":true}',
        '{"ns":["/"]}',
        '{"transports":"websocket"}',
        '{"codecs":[1]}',
        "[" * 2000 + "]" * 2000,
        '{"v":1,"x":NaN}',
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for body in bodies:
            r = await http.post("/anywire/negotiate", content=body,
                                headers={"content-type": "application/json"})  # fmt: skip
            assert r.status_code == 400 and r.json()["code"] == 4502, (body[:60], r.text)
    log = _log(server, start)
    assert "Traceback" not in log
    assert len([ln for ln in log.splitlines() if "anywire: refused negotiate" in ln]) == len(bodies)
