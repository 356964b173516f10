"""The frames ``anywire serve`` builds itself (anywire.server.wsframes, the direct write
of server/wsprotocol.py), on the wire of a real server: each answer is the exact bytes
``websockets`` would have framed, in the short, 16-bit and 64-bit length forms, text and
binary, and a close after such frames is still a clean close handshake, whichever side
starts it. (A client on permessage-deflate still gets compressed frames:
test_deflate.py, the direct write leaves those to ``websockets``.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from tests.netfault import FaultProxy

from .conftest import Server, make_token, start_server

WAIT = 10.0
# Answers whose payload is exactly each boundary of the header's forms (RFC 6455 5.2).
TARGETS = [125, 126, 65535, 65536]


@pytest.fixture(scope="module")
def big() -> Iterator[Server]:
    """A server that takes messages big enough to echo a 64 KB answer, and sends no
    heartbeat within a test (our raw client would have to answer it)."""
    env = {"AW_MAX_FRAME": str(256 * 1024), "AW_PING_INTERVAL": "60", "AW_PING_TIMEOUT": "60"}
    srv = start_server(env)
    yield srv
    srv.stop()


@pytest.fixture
def proxy(big: Server) -> Iterator[FaultProxy]:
    rec = FaultProxy(big.port, record=True)
    yield rec
    rec.close()


class Conn:
    """A raw WebSocket session speaking one codec: JSON text or MessagePack binary."""

    def __init__(self, ws: ClientConnection, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.seq = 0

    def encode(self, frame: dict[str, Any]) -> str | bytes:
        return msgpack.packb(frame) if self.binary else json.dumps(frame)

    async def call(self, data: str) -> bytes:
        """Echo ``data``; the payload of the message holding the answer, as received."""
        self.seq += 1
        await self.ws.send(
            self.encode({"t": "event", "s": self.seq, "id": self.seq, "e": "echo", "d": data})
        )
        async with asyncio.timeout(WAIT):
            while True:
                raw = await self.ws.recv(decode=False)
                frames = msgpack.unpackb(raw) if self.binary else json.loads(raw)
                # (The answer may share its message with an rx: [rx, ack].)
                for frame in frames if isinstance(frames, list) else [frames]:
                    if frame.get("t") == "ack" and frame.get("id") == self.seq:
                        return raw


async def _open(base: str, binary: bool) -> tuple[ClientConnection, str]:
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        neg = await http.post(
            "/anywire/negotiate",
            json={"codecs": ["msgpack" if binary else "json"], "transports": ["websocket"]},
            headers={"Authorization": f"Bearer {make_token('frames')}"},
        )
        neg.raise_for_status()
        ticket = neg.json()["ticket"]
    ws = await connect(
        base.replace("http", "ws") + f"/anywire/ws?ticket={ticket}",
        ping_interval=None,
        max_size=None,
        compression=None,
    )
    return ws, ticket


@pytest.mark.parametrize("binary", [False, True], ids=["json-text", "msgpack-binary"])
async def test_answers_are_framed_as_websockets_would(proxy: FaultProxy, binary: bool) -> None:
    ws, ticket = await _open(proxy.url, binary)
    conn = Conn(ws, binary)
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    try:
        await ws.send(conn.encode({"t": "connect", "ticket": ticket}))
        await ws.recv()  # the hello
        answers: list[bytes] = []
        for target in TARGETS:
            size = target - 40
            for _ in range(4):  # the envelope's size moves with the data's: converge
                answer = await conn.call("x" * size)
                answers.append(answer)
                if len(answer) == target:
                    break
                size += target - len(answer)
            assert len(answer) == target
        await ws.close()  # a clean close after direct frames, the client first
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000
        assert ws.protocol.close_rcvd_then_sent is False  # we sent first, the server answered
    finally:
        await ws.close()
    wire = bytes(proxy.recorded)
    for answer in answers:
        assert Frame(opcode, answer).serialize(mask=False) in wire, len(answer)


async def test_a_server_close_after_direct_frames_is_a_clean_handshake(proxy: FaultProxy) -> None:
    """The server closes (a message over its limit: 4503) right after answers it framed
    itself: the close frame follows them, the client's answer completes the handshake."""
    ws, ticket = await _open(proxy.url, False)
    conn = Conn(ws, False)
    await ws.send(conn.encode({"t": "connect", "ticket": ticket}))
    await ws.recv()
    for _ in range(3):
        assert b'"d":"hi"' in await conn.call("hi")
    await ws.send("y" * (300 * 1024))
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503
    assert closed.value.sent is not None and closed.value.sent.code == 4503
    assert closed.value.rcvd_then_sent is True  # the server's close, answered
    async with asyncio.timeout(WAIT):
        await ws.wait_closed()
