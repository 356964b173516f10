"""A client's receipt (``rx``) on the WebSocket read's short path (#17: a receipt cost
~57k instructions at the server): a message that is exactly one ``rx`` frame, as clients
write it, goes from the bytes to the session's ``acknowledge`` (``Codec.decode_rx``,
``MessageReader._receipt``, ``Host.receipt``) without a frame object, the general
decode or a hold of the writer. Every check stays: ``n`` above what was sent is
answered 4502 and the session lives on, each receipt costs a flood token (4008 past the
budget), a malformed one gets the reference path's error, a receipt in a batch is read
as before; on both codecs, through the direct read (``anywire serve``'s protocol) and
through ASGI (any other server).

The real protocol on the recording transport of test_ws_direct_read.py, the real app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import pytest
from websockets.frames import Frame, Opcode

from anywire.core.closecodes import CloseCode
from anywire.core.codec import Outgoing
from anywire.core.frames import UINT_LIMIT
from anywire.core.session import ServerSession
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.transports.websocket import WebSocketTransport

from .helpers import issue
from .test_ws_direct_read import WAIT, Pair
from .test_ws_flusher import SCOPE, FakePeer

CODECS = ["json", "msgpack"]


class Client:
    """One connected session on the server's protocol, in ``codec``."""

    def __init__(self, aw: Anywire, pair: Pair, codec: str) -> None:
        self.aw, self.pair, self.codec = aw, pair, codec
        self.sess: ServerSession  # once connected

    def encode(self, obj: Any) -> bytes:
        """``obj`` as the client's codec writes it (JSON without spaces, as clients do)."""
        if self.codec == "msgpack":
            return msgpack.packb(obj)  # type: ignore[no-any-return]
        return json.dumps(obj, separators=(",", ":")).encode()

    def send(self, payload: bytes) -> None:
        """One client message with this exact payload, as one TCP read."""
        opcode = Opcode.BINARY if self.codec == "msgpack" else Opcode.TEXT
        self.pair.feed(Frame(opcode, payload).serialize(mask=True))

    def decoded(self) -> list[dict[str, Any]]:
        """Every frame the server sent so far, decoded (batches flattened)."""
        self.pair.pump()
        out: list[dict[str, Any]] = []
        for f in self.pair.frames:
            if f.opcode is Opcode.TEXT:
                obj = json.loads(f.data)
            elif f.opcode is Opcode.BINARY:
                obj = msgpack.unpackb(f.data)
            else:
                continue
            out.extend(obj if isinstance(obj, list) else [obj])
        return out

    def errors(self) -> list[tuple[int, str]]:
        return [(f["c"], f["m"]) for f in self.decoded() if f["t"] == "error"]

    def acks(self) -> list[Any]:
        return [f["d"] for f in self.decoded() if f["t"] == "ack"]

    async def delivered(self, count: int) -> None:
        """``count`` events pushed to the session and written to the client."""
        for i in range(count):
            self.aw.host.push(self.sess, Outgoing("event", {"e": "tick", "d": i}))
        await self.pair.until(lambda: self.sess.written == self.sess.out_seq)


def _app(settings: Settings | None = None) -> Anywire:
    aw = Anywire(anonymous=True, settings=settings)

    @aw.on("echo")
    def echo(sock: Any, data: Any) -> Any:
        return data

    return aw


@asynccontextmanager
async def _client(codec: str, settings: Settings | None = None) -> AsyncIterator[Client]:
    aw = _app(settings)
    await aw.start()
    pair = Pair(aw, 1 << 20)
    try:
        ticket = (await issue(aw, "reader", codec)).ticket
        await pair.handshake()
        client = Client(aw, pair, codec)
        client.send(client.encode({"t": "connect", "ticket": ticket}))
        await pair.until(lambda: any(f["t"] == "hello" for f in client.decoded()))
        client.sess = next(iter(aw.host.sessions.values()))
        yield client
    finally:
        await pair.end(aw)


def _uint(n: int, kind: int, size: int) -> bytes:
    """A MessagePack ``rx`` whose ``n`` has the unsigned format ``kind`` (``size`` bytes)."""
    return msgpack.packb({"t": "rx", "n": 0})[:-1] + bytes([kind]) + n.to_bytes(size, "big")


@pytest.mark.parametrize("codec", CODECS)
async def test_a_receipt_is_acknowledged_within_its_read(codec: str) -> None:
    async with _client(codec) as c:
        await c.delivered(5)
        last = c.sess.out_seq
        frames_in = c.sess.connection.traffic.frames_in  # type: ignore[union-attr]
        c.send(c.encode({"t": "rx", "n": last - 2}))
        # No loop iteration in between: the outbox already dropped what was received.
        assert c.sess.floor == last - 1
        assert [s for s, _ in c.sess.outbox] == [last - 1, last]
        assert c.sess.connection.traffic.frames_in == frames_in + 1  # type: ignore[union-attr]
        c.send(c.encode({"t": "rx", "n": last}))
        assert c.sess.floor == last + 1 and not c.sess.outbox
        c.send(c.encode({"t": "rx", "n": 1}))  # an old one: nothing to drop, no error
        assert c.sess.floor == last + 1
        c.send(c.encode({"t": "event", "s": 1, "id": 1, "e": "echo", "d": "on"}))
        await c.pair.until(lambda: c.acks() == ["on"])
        assert c.errors() == []


async def test_every_msgpack_unsigned_format_of_n_is_read() -> None:
    async with _client("msgpack") as c:
        await c.delivered(3)
        for n, kind, size in [(1, 0xCC, 1), (2, 0xCD, 2), (2, 0xCE, 4), (3, 0xCF, 8)]:
            c.send(_uint(n, kind, size))
            assert c.sess.floor == n + 1, (kind, c.sess.floor)
        assert c.errors() == []


@pytest.mark.parametrize("codec", CODECS)
async def test_a_receipt_above_what_was_sent_is_answered_4502_and_the_session_goes_on(
    codec: str,
) -> None:
    async with _client(codec) as c:
        await c.delivered(2)
        last = c.sess.out_seq
        c.send(c.encode({"t": "rx", "n": last + 1}))
        await c.pair.until(lambda: bool(c.errors()))
        assert c.errors() == [
            (CloseCode.BAD_REQUEST, f"ack {last + 1} is ahead of the last frame sent {last}")
        ]
        assert c.sess.floor == 1 and len(c.sess.outbox) == 2  # nothing acknowledged
        c.send(c.encode({"t": "rx", "n": last}))
        assert c.sess.floor == last + 1
        c.send(c.encode({"t": "event", "s": 1, "id": 1, "e": "echo", "d": "still here"}))
        await c.pair.until(lambda: c.acks() == ["still here"])
        assert not c.pair.wire.closed


# Receipts the short path does not take: the reference path reads or refuses them, in its
# own words.
MALFORMED_JSON = [
    b'{"t":"rx","n":01}',
    b'{"t":"rx","n":-1}',
    b'{"t":"rx","n":1.0}',
    b'{"t":"rx","n":1e0}',
    b'{"t":"rx","n":}',
    b'{"t":"rx","n":"1"}',
    b'{"t":"rx","n":%d}' % UINT_LIMIT,
    b'{"t":"rx","n":99999999999999999999999}',
    b'{"t":"rx","n":1}}',
    '{"t":"rx","n":\u0661}'.encode(),  # an Arabic-Indic digit one
]
MALFORMED_MSGPACK = [
    msgpack.packb({"t": "rx", "n": -1}),
    msgpack.packb({"t": "rx", "n": 1.0}),
    msgpack.packb({"t": "rx", "n": UINT_LIMIT}),
    _uint(2**64 - 1, 0xCF, 8),
    msgpack.packb({"t": "rx", "n": 0})[:-1],  # no n value
    msgpack.packb({"t": "rx", "n": 0})[:-1] + b"\xcd\x01",  # n cut short
]


@pytest.mark.parametrize("codec", CODECS)
async def test_malformed_receipts_get_the_reference_paths_error(codec: str) -> None:
    bad = MALFORMED_MSGPACK if codec == "msgpack" else MALFORMED_JSON
    async with _client(codec) as c:
        await c.delivered(1)
        for i, payload in enumerate(bad):
            c.send(payload)
            await c.pair.until(lambda i=i: len(c.errors()) == i + 1)  # type: ignore[misc]
        codes = [code for code, _ in c.errors()]
        assert codes == [CloseCode.BAD_REQUEST] * len(bad), c.errors()
        assert c.sess.floor == 1  # none acknowledged anything
        c.send(c.encode({"t": "event", "s": 1, "id": 1, "e": "echo", "d": "fine"}))
        await c.pair.until(lambda: c.acks() == ["fine"])


@pytest.mark.parametrize("codec", CODECS)
async def test_a_receipt_in_a_batch_with_other_frames_is_read_with_them(codec: str) -> None:
    async with _client(codec) as c:
        await c.delivered(3)
        event = {"t": "event", "s": 1, "id": 1, "e": "echo", "d": "x"}
        c.send(c.encode([{"t": "rx", "n": 2}, event]))
        assert c.sess.floor == 3
        await c.pair.until(lambda: c.acks() == ["x"])
        c.send(c.encode([{"t": "rx", "n": 9}, {**event, "s": 2, "id": 2}]))
        await c.pair.until(lambda: bool(c.errors()))
        assert c.errors()[0][0] == CloseCode.BAD_REQUEST
        assert c.sess.floor == 3 and c.sess.in_last == 1  # the event after it: not read


@pytest.mark.parametrize("codec", CODECS)
async def test_receipts_are_charged_to_the_flood_budget(codec: str) -> None:
    async with _client(codec, Settings(flood_rate=0.001, flood_burst=10)) as c:
        await c.delivered(1)
        rx = c.encode({"t": "rx", "n": 1})
        for _ in range(8):  # well within the budget
            c.send(rx)
        assert c.pair.close_code() is None and c.sess.floor == 2
        for _ in range(4):  # the budget's last tokens, then past it (one read each)
            c.send(rx)
        await c.pair.until(lambda: c.pair.close_code() is not None)
        assert c.pair.close_code() == CloseCode.FLOOD


async def test_a_receipt_through_asgi_is_read_as_text() -> None:
    """Another server (no direct read): the message arrives as ``str``."""
    aw = _app()
    await aw.start()
    issued = await issue(aw, "asgi")
    peer = FakePeer(issued.ticket)
    task = asyncio.create_task(WebSocketTransport(aw.host)(SCOPE, peer.receive, peer.send))
    try:
        await peer.wait_for(lambda: any('"hello"' in m.get("text", "") for m in peer.sent))
        sess = aw.host.sessions[issued.sid]
        for i in range(3):
            aw.host.push(sess, Outgoing("event", {"e": "tick", "d": i}))
        await peer.wait_for(lambda: sess.written == sess.out_seq == 3)
        peer.inbox.put_nowait({"type": "websocket.receive", "text": '{"t":"rx","n":2}'})
        peer.ask(1, "after")
        await peer.wait_for(lambda: peer.acks() == ["after"])
        assert sess.floor == 3
        peer.inbox.put_nowait({"type": "websocket.receive", "text": '{"t":"rx","n":99}'})
        peer.ask(2, "still")
        await peer.wait_for(lambda: peer.acks() == ["after", "still"])
        errors = [m for m in peer.sent if '"error"' in str(m)]
        assert len(errors) == 1 and '"c":4502' in str(errors[0]), peer.sent
    finally:
        peer.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, WAIT)
        await aw.stop(grace=0.1)
