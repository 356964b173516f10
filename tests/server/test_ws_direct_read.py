"""The direct read (#17: server/wsreading.py, transports/wsread.py): ``anywire serve``'s
WebSocket protocol hands each complete client message to the transport in
``data_received`` itself, not through ASGI's ``receive()`` and a task step.

The real protocol class ``anywire serve`` runs (server/wsprotocol.py, uvicorn's sans-I/O
protocol underneath), the real app, and a recording transport in place of the socket;
a ``websockets`` client protocol writes the client's bytes and reads the server's, so
every test chooses exactly how the bytes arrive (one message split over reads, several
in one read, fragments). The ASGI path (other servers) is test_ws_flusher.py's and
test_ws_direct.py's (recording ASGI fakes, no direct read offered)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from anywire.core.closecodes import CloseCode
from anywire.server.app import Anywire
from anywire.server.wsprotocol import metered_protocol
from anywire.transports.wsread import QUIET_YIELD

from ..wsreplies import acks, close_code
from .helpers import issue
from .wsroom import quiet

WAIT = 5.0


class Wire(asyncio.Transport):
    """The socket under the server's protocol: what it writes, and whether it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.reading = True
        self.closed = False
        self.wrote = asyncio.Event()

    def write(self, data: Any) -> None:
        self.out += data
        self.wrote.set()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.wrote.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )


class Pair:
    """One connection: the server's protocol on a :class:`Wire`, a client protocol."""

    def __init__(self, aw: Anywire, max_size: int, deflate: bool = False) -> None:
        config = uvicorn.Config(
            aw,
            ws=metered_protocol(aw.settings),
            ws_max_size=max_size,
            ws_ping_interval=None,
            lifespan="off",
            log_level="critical",
        )
        config.load()
        self.state = ServerState()
        self.server: Any = config.ws_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self.state, app_state={}, _loop=asyncio.get_running_loop()
        )
        self.wire = Wire()
        self.server.connection_made(self.wire)
        self.client = ClientProtocol(
            parse_uri("ws://127.0.0.1:8000/anywire/ws"),
            extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
            max_size=None,
        )
        self.frames: list[Frame] = []  # every frame the server sent, in order
        self.seen = 0  # bytes of wire.out given to the client

    def feed(self, data: bytes) -> None:
        """Bytes from the client, as one TCP read."""
        self.server.data_received(data)

    async def handshake(self) -> None:
        """The client's opening handshake, answered (101)."""
        self.client.send_request(self.client.connect())
        self.feed(b"".join(self.client.data_to_send()))
        await self.until(lambda: self.client.handshake_exc is None and self.seen > 0)

    async def end(self, aw: Anywire) -> None:
        """Drop the connection if it is still open, wait (bounded) for its tasks, stop
        ``aw``."""
        if not self.wire.closed:
            self.server.connection_lost(None)
        tasks = list(self.state.tasks)
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)
        await aw.stop(grace=0.1)

    def pump(self) -> None:
        """Hand what the server wrote to the client protocol."""
        out = bytes(self.wire.out[self.seen :])
        self.seen = len(self.wire.out)
        if out:
            self.client.receive_data(out)
        for event in self.client.events_received():
            if isinstance(event, Frame):
                self.frames.append(event)
            else:
                assert isinstance(event, Response) and event.status_code == 101, event

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait (bounded) until ``predicate()`` holds of what the server wrote."""
        async with asyncio.timeout(WAIT):
            while True:
                self.pump()
                if predicate():
                    return
                self.wire.wrote.clear()
                await self.wire.wrote.wait()

    def message(self, frame: dict[str, Any]) -> bytes:
        """One client text message, framed and masked as a client sends it."""
        self.client.send_text(json.dumps(frame).encode())
        return b"".join(self.client.data_to_send())

    def acks(self) -> list[Any]:
        """The ``d`` of every ack the server sent, in order."""
        return acks(self.frames)

    def close_code(self) -> int | None:
        return close_code(self.frames)


def _app(calls: list[Any]) -> Anywire:
    aw = Anywire(anonymous=True)

    @aw.on("echo")
    def echo(sock: Any, data: Any) -> Any:
        calls.append(data)
        return data

    @aw.on("slow")
    async def slow(sock: Any, data: Any) -> Any:
        calls.append(data)
        return data

    return aw


@asynccontextmanager
async def _connected(
    calls: list[Any],
    max_size: int = 1 << 20,
    pipelined: list[bytes] | None = None,
    deflate: bool = False,
) -> AsyncIterator[Pair]:
    """A connected session (hello received); ``pipelined``: client messages sent in the
    same TCP read as the connect frame; ``deflate``: the client offers permessage-deflate
    (uvicorn accepts it)."""
    aw = _app(calls)
    await aw.start()
    pair = Pair(aw, max_size, deflate)
    try:
        ticket = (await issue(aw, "reader")).ticket
        await pair.handshake()
        first = pair.message({"t": "connect", "ticket": ticket})
        pair.feed(first + b"".join(pipelined or []))
        await pair.until(lambda: any(b'"hello"' in f.data for f in pair.frames))
        yield pair
    finally:
        await pair.end(aw)


def _echo(seq: int, data: Any, event: str = "echo") -> dict[str, Any]:
    return {"t": "event", "s": seq, "id": seq, "e": event, "d": data}


async def test_a_message_is_handled_in_the_read_that_completes_it() -> None:
    """No task step between the socket and the handler: the message is handled within
    ``data_received`` (through ASGI it waited for the connection's task), also when its
    frame arrived over several reads."""
    calls: list[Any] = []
    async with _connected(calls) as pair:
        pair.feed(pair.message(_echo(1, "a")))
        assert calls == ["a"]  # already, with no loop iteration in between
        whole = pair.message(_echo(2, "split"))
        for i in range(len(whole) - 1):
            pair.feed(whole[i : i + 1])  # one byte per read
        assert calls == ["a"]  # incomplete: nothing handled
        pair.feed(whole[-1:])
        assert calls == ["a", "split"]
        await pair.until(lambda: pair.acks() == ["a", "split"])


async def test_a_fragmented_message_is_handled_whole() -> None:
    calls: list[Any] = []
    async with _connected(calls) as pair:
        text = json.dumps(_echo(1, "one two three")).encode()
        parts = [text[:7], text[7:20], text[20:]]
        frames = [Frame(Opcode.TEXT, parts[0], fin=False)]
        frames += [Frame(Opcode.CONT, parts[1], fin=False), Frame(Opcode.CONT, parts[2])]
        wire = b"".join(f.serialize(mask=True) for f in frames)
        pair.feed(wire)
        assert calls == ["one two three"]
        await pair.until(lambda: pair.acks() == ["one two three"])


async def test_pipelined_messages_are_answered_in_order() -> None:
    """Many requests in one read: each read while the one before waits for its settle
    round is fed, and its answer goes out after that one's; async handlers and receipts
    in between keep their places."""
    calls: list[Any] = []
    async with _connected(calls) as pair:
        chunk = b""
        for seq in range(1, 61):
            event = "slow" if seq % 7 == 0 else "echo"
            chunk += pair.message(_echo(seq, seq, event))
            if seq % 16 == 0:
                chunk += pair.message({"t": "rx", "n": 0})
        pair.feed(chunk)
        await pair.until(lambda: len(pair.acks()) == 60)
        assert pair.acks() == list(range(1, 61))


async def test_messages_sent_with_the_connect_frame_come_first() -> None:
    """Messages that reached the queue before the direct read started are read first,
    through ``receive()``, in order with those read directly after them."""
    calls: list[Any] = []
    pipelined = [Frame(Opcode.TEXT, json.dumps(_echo(s, s)).encode()).serialize(mask=True)
                 for s in (1, 2, 3)]  # fmt: skip
    async with _connected(calls, pipelined=pipelined) as pair:
        pair.feed(pair.message(_echo(4, 4)))
        await pair.until(lambda: len(pair.acks()) == 4)
        assert pair.acks() == [1, 2, 3, 4]
        assert calls == [1, 2, 3, 4]


async def test_a_write_waiting_for_the_socket_does_not_stop_the_reading() -> None:
    """As through ASGI: while an answer waits for a full socket, later requests are still
    read and handled (what a peer that does not read can make the server hold is the
    outbox budget's to bound: 4002, tests/e2e/test_memory_rss.py), and once it drains
    every answer goes out, in order."""
    calls: list[Any] = []
    async with _connected(calls) as pair:
        pair.server.pause_writing()  # the socket's buffer is full
        pair.feed(pair.message(_echo(1, 1)))
        await quiet()  # the answer's settle round: its write waits for the socket
        pair.feed(b"".join(pair.message(_echo(seq, seq)) for seq in (2, 3, 4)))
        assert calls == [1, 2, 3, 4]  # handled in the read
        assert pair.wire.reading
        pair.server.resume_writing()  # it drains
        await pair.until(lambda: pair.acks() == [1, 2, 3, 4])


async def test_a_message_over_max_frame_size_is_refused_as_before() -> None:
    calls: list[Any] = []
    async with _connected(calls) as pair:
        limit = 64 * 1024  # Settings().max_frame_size
        pair.feed(pair.message(_echo(1, "x" * limit)))
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 4503
        assert calls == []


async def test_a_message_over_the_protocol_limit_is_refused_as_before() -> None:
    calls: list[Any] = []
    async with _connected(calls, max_size=1000) as pair:
        pair.feed(pair.message(_echo(1, "x" * 2000)))
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 1009
        assert calls == []


async def test_invalid_utf8_in_a_text_message_fails_the_connection() -> None:
    calls: list[Any] = []
    async with _connected(calls) as pair:
        bad = b'{"t":"event","s":1,"id":1,"e":"echo","d":"\xff"}'
        pair.feed(Frame(Opcode.TEXT, bad).serialize(mask=True))
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 1007
        assert calls == []


async def test_a_close_while_an_answer_waits_ends_cleanly() -> None:
    """The client's close comes in the same read as a request: the request is handled,
    the connection ends without a failure, and the session keeps the answer for a
    resume (it never reached the socket)."""
    calls: list[Any] = []
    async with _connected(calls) as pair:
        request = pair.message(_echo(1, "last"))
        pair.client.send_close(1000)
        pair.feed(request + b"".join(pair.client.data_to_send()))
        assert calls == ["last"]
        await pair.until(lambda: pair.wire.closed)
        tasks = list(pair.state.tasks)
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*tasks)  # ends, and without raising
        assert pair.close_code() == 1000
        assert CloseCode.INTERNAL_ERROR not in [
            int.from_bytes(f.data[:2], "big") for f in pair.frames if f.opcode is Opcode.CLOSE
        ]


async def test_a_run_of_messages_that_write_nothing_lets_the_loop_in() -> None:
    """Events without an ack id write nothing: a read full of them is taken
    ``QUIET_YIELD`` at a time, with a loop iteration between (other connections'
    turn), all of them in order in the end."""
    calls: list[Any] = []
    async with _connected(calls) as pair:
        many = 3 * QUIET_YIELD + 5
        chunk = b"".join(
            pair.message({"t": "event", "s": seq, "e": "echo", "d": seq})
            for seq in range(1, many + 1)
        )
        pair.feed(chunk)
        assert calls == list(range(1, QUIET_YIELD + 1))  # then a pause
        assert not pair.wire.reading
        async with asyncio.timeout(WAIT):
            while len(calls) < many:
                await asyncio.sleep(0)  # (each pause lasts one iteration)
        assert calls == list(range(1, many + 1))
        await quiet()
        assert pair.wire.reading


async def test_messages_waiting_in_a_pause_are_handled_before_the_close_after_them() -> None:
    """Requests that wait in a pause (the quiet yield), then the client's close in the
    same read: the connection ends, and every request before the close was handled,
    in order."""
    calls: list[Any] = []
    async with _connected(calls) as pair:
        receipts = [pair.message({"t": "rx", "n": 0}) for _ in range(QUIET_YIELD)]
        requests = [pair.message(_echo(seq, seq)) for seq in (1, 2)]
        pair.client.send_close(1000)
        pair.feed(b"".join([*receipts, *requests, *pair.client.data_to_send()]))
        assert calls == []  # waiting: the yield
        await pair.until(lambda: pair.wire.closed)
        tasks = list(pair.state.tasks)
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*tasks)
        assert calls == [1, 2]


async def test_after_its_close_went_out_the_server_reads_on_for_the_peers_close() -> None:
    """Messages that waited in a pause, the first of them ending the connection (too
    large): the close goes out, and the server must go on reading (what follows is
    discarded) so that the peer's close reply ends the connection at once, not after
    uvicorn's close timeout."""
    calls: list[Any] = []
    async with _connected(calls) as pair:
        # Receipts write nothing, so the close is written at once, in the resume.
        quiet_ones = [pair.message({"t": "rx", "n": 0}) for _ in range(QUIET_YIELD)]
        too_big = pair.message(_echo(1, "x" * (64 * 1024)))
        after = pair.message(_echo(2, "after"))
        await quiet()
        pair.feed(b"".join([*quiet_ones, too_big, after]))
        assert not pair.wire.reading  # the yield
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 4503
        await quiet()
        assert pair.wire.reading  # for the peer's close reply
        pair.feed(b"".join(pair.client.data_to_send()))  # (the client's reply, made when
        # it received the close)
        assert pair.wire.closed
        assert "after" not in calls
