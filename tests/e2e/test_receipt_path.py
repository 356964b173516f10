"""A client's receipt written as clients write it (``{"t":"rx","n":N}``, no spaces) takes
the servers' short path (#17: ``Codec.decode_rx``, ``Host.receipt``) on every transport:
over the WebSocket and in a ``POST /send`` body. It is taken (204 on HTTP), one above what
was sent is refused 4502 in the usual words (an error frame on the WebSocket, a 400 with
the JSON error on HTTP), and the session goes on."""

from __future__ import annotations

from typing import Any

from anywire.core.closecodes import CloseCode

from .conftest import Server, make_token
from .raw import RawConn


async def _echo(conn: RawConn, seq: int, data: str) -> dict[str, Any]:
    await conn.send({"t": "event", "s": seq, "id": seq, "e": "echo", "d": data})
    while (frame := await conn.recv())["t"] != "ack":
        pass
    assert frame["d"] == data, frame
    return dict(frame)


async def test_a_receipt_is_taken_and_one_ahead_is_refused(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token(f"receipt-{transport}"))
    try:
        await conn.open()
        sent = (await _echo(conn, 1, "a"))["s"]
        answer = await conn.send_raw(f'{{"t":"rx","n":{sent}}}')
        if transport != "websocket":
            assert answer is not None and answer.status_code == 204, answer
        ahead = sent + 100
        answer = await conn.send_raw(f'{{"t":"rx","n":{ahead}}}')
        if transport == "websocket":
            while (error := await conn.recv())["t"] != "error":
                pass
            code, message = error["c"], error["m"]
        else:
            assert answer is not None and answer.status_code == 400, answer
            code, message = answer.json()["code"], answer.json()["message"]
        assert code == CloseCode.BAD_REQUEST
        assert message.startswith(f"ack {ahead} is ahead of the last frame sent"), message
        await _echo(conn, 2, "still here")
    finally:
        await conn.close()
