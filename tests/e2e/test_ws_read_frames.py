"""The frames ``anywire serve`` reads itself (anywire.server.wsparse, in the direct read of
server/wsreading.py), on the socket of a real server: a client that writes exactly the
bytes it chooses, in one write each, the frames a whole message takes mixed with those
left to ``websockets`` (pings, fragments, a close) and with bad ones, which must be
answered as ``websockets`` and uvicorn answer them (a pong, 1000, 1002, 1007, 1009).
WebSocket framing only: the other transports have no frames (their bodies' limits are
test_hostile_bodies.py's)."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from ..wsreplies import acks, close_code
from .conftest import Server, make_token, start_server

WAIT = 10.0
MAX_FRAME = 16 * 1024  # AW_MAX_FRAME: anywire serve's ws_max_size is 4 times it


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    """No heartbeat within a test (this raw client would have to answer it)."""
    env = {"AW_MAX_FRAME": str(MAX_FRAME), "AW_PING_INTERVAL": "60", "AW_PING_TIMEOUT": "60"}
    server = start_server(env)
    yield server
    server.stop()


class RawWs:
    """A WebSocket client on a plain socket: ``websockets``' sans-I/O client protocol
    frames what the test asks it to and parses what the server sends; ``write`` puts
    any bytes on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 client: ClientProtocol) -> None:  # fmt: skip
        self.reader, self.writer, self.client = reader, writer, client
        self.frames: list[Frame] = []
        self.seq = 0

    def frame(self, opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
        return Frame(opcode, data, fin).serialize(mask=True)

    def event(self, data: Any) -> bytes:
        """An echo request, framed; its ``id`` is its sequence number."""
        self.seq += 1
        body = {"t": "event", "s": self.seq, "id": self.seq, "e": "echo", "d": data}
        return json.dumps(body).encode()

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def pump(self) -> bool:
        """Read once; False at the end of the stream."""
        data = await self.reader.read(65536)
        if not data:
            self.client.receive_eof()
            return False
        self.client.receive_data(data)
        for event in self.client.events_received():
            if isinstance(event, Frame):
                self.frames.append(event)
            else:
                assert isinstance(event, Response) and event.status_code == 101, event
        return True

    async def until(self, done: Any) -> None:
        async with asyncio.timeout(WAIT):
            while not done():
                if not await self.pump():
                    break
        assert done(), self.frames

    def acks(self) -> list[Any]:
        return acks(self.frames)

    def pongs(self) -> list[bytes]:
        return [bytes(f.data) for f in self.frames if f.opcode is Opcode.PONG]

    def close_code(self) -> int | None:
        return close_code(self.frames)

    async def ended(self) -> None:
        """The server closed the TCP connection (bounded)."""
        async with asyncio.timeout(WAIT):
            while await self.pump():
                pass


@asynccontextmanager
async def _session(srv: Server) -> AsyncIterator[RawWs]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=WAIT) as http:
        neg = await http.post(
            "/anywire/negotiate",
            json={"codecs": ["json"], "transports": ["websocket"]},
            headers={"Authorization": f"Bearer {make_token('wsread')}"},
        )
        neg.raise_for_status()
        ticket = neg.json()["ticket"]
    client = ClientProtocol(
        parse_uri(f"ws://127.0.0.1:{srv.port}/anywire/ws?ticket={ticket}"), max_size=None
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    ws = RawWs(reader, writer, client)
    try:
        client.send_request(client.connect())
        await ws.write(b"".join(client.data_to_send()))
        await ws.until(lambda: client.handshake_exc is None and client.state.name == "OPEN")
        connect = json.dumps({"t": "connect", "ticket": ticket}).encode()
        await ws.write(ws.frame(Opcode.TEXT, connect))
        await ws.until(lambda: any(b'"hello"' in f.data for f in ws.frames))
        yield ws
    finally:
        writer.close()


async def test_a_ping_in_a_stream_of_messages_is_answered_in_place(srv: Server) -> None:
    async with _session(srv) as ws:
        first = ws.frame(Opcode.TEXT, ws.event(1)) + ws.frame(Opcode.TEXT, ws.event(2))
        ping = ws.frame(Opcode.PING, b"ping in the stream")
        rest = b"".join(ws.frame(Opcode.TEXT, ws.event(n)) for n in range(3, 9))
        await ws.write(first + ping + rest)
        await ws.until(lambda: len(ws.acks()) == 8 and ws.pongs())
        assert ws.acks() == list(range(1, 9))
        assert ws.pongs() == [b"ping in the stream"]


async def test_a_fragmented_message_between_whole_ones(srv: Server) -> None:
    async with _session(srv) as ws:
        before = ws.frame(Opcode.TEXT, ws.event("before"))
        text = ws.event("in three parts")
        parts = ws.frame(Opcode.TEXT, text[:5], fin=False)
        parts += ws.frame(Opcode.CONT, text[5:20], fin=False)
        parts += ws.frame(Opcode.PING, b"between fragments")
        parts += ws.frame(Opcode.CONT, text[20:])
        after = ws.frame(Opcode.TEXT, ws.event("after"))
        await ws.write(before + parts + after)
        await ws.until(lambda: len(ws.acks()) == 3)
        assert ws.acks() == ["before", "in three parts", "after"]
        assert ws.pongs() == [b"between fragments"]


async def test_a_message_split_over_writes_between_whole_ones(srv: Server) -> None:
    async with _session(srv) as ws:
        one, two = ws.frame(Opcode.TEXT, ws.event(1)), ws.frame(Opcode.TEXT, ws.event("x" * 300))
        three = ws.frame(Opcode.TEXT, ws.event(3))
        await ws.write(one + two[:3])  # inside the header of a 16-bit length
        await ws.until(lambda: ws.acks() == [1])
        await ws.write(two[3:40])
        await ws.write(two[40:] + three)
        await ws.until(lambda: len(ws.acks()) == 3)
        assert ws.acks() == [1, "x" * 300, 3]


async def test_a_close_after_messages_ends_cleanly(srv: Server) -> None:
    async with _session(srv) as ws:
        messages = b"".join(ws.frame(Opcode.TEXT, ws.event(n)) for n in range(1, 4))
        ws.client.send_close(1000)
        await ws.write(messages + b"".join(ws.client.data_to_send()))
        await ws.ended()
        assert ws.close_code() == 1000


async def test_bad_utf8_after_good_messages_closes_1007(srv: Server) -> None:
    async with _session(srv) as ws:
        good = ws.frame(Opcode.TEXT, ws.event("fine"))
        bad = ws.frame(Opcode.TEXT, ws.event("\udcff").replace(b"\\udcff", b"\xed\xb3\xbf"))
        await ws.write(good + bad + ws.frame(Opcode.TEXT, ws.event("never")))
        await ws.ended()
        assert ws.close_code() == 1007
        assert "never" not in ws.acks()


@pytest.mark.parametrize(
    "frame",
    [
        Frame(Opcode.TEXT, b"{}").serialize(mask=False),
        bytes([0x83, 0x80, 0, 0, 0, 0]),
        bytes([0xC1, 0x82, 0, 0, 0, 0]) + b"{}",
    ],
    ids=["unmasked", "reserved-opcode", "rsv1"],
)
async def test_a_frame_websockets_refuses_closes_1002(srv: Server, frame: bytes) -> None:
    async with _session(srv) as ws:
        await ws.write(ws.frame(Opcode.TEXT, ws.event("first")) + frame)
        await ws.ended()
        assert ws.close_code() == 1002


@pytest.mark.parametrize("declared", [4 * MAX_FRAME + 1, 2**63 - 1])
async def test_a_frame_over_ws_max_size_closes_1009(srv: Server, declared: int) -> None:
    async with _session(srv) as ws:
        head = bytes([0x82, 0xFF]) + struct.pack("!Q", declared) + b"\x01\x02\x03\x04"
        await ws.write(ws.frame(Opcode.TEXT, ws.event("first")) + head + b"\x00" * 100)
        await ws.ended()
        assert ws.close_code() == 1009
