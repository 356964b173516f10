"""The read of whole frames without ``websockets`` (anywire.server.wsparse, in
server/wsreading.py's ``data_received``): the real protocol class ``anywire serve`` runs
and the real app, on test_ws_direct_read.py's recording transport, so each test chooses
exactly how the bytes arrive. What ``websockets`` was given is recorded on the
connection's own ``websockets`` protocol object: whole single-frame messages must never
reach it, everything else must, from its first byte, as it did before; and the answers
(pongs, close codes, acks) are those ``websockets`` gives. tests/e2e/test_ws_read_frames.py
does the same through a real server's socket."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.frames import Frame, Opcode

from anywire.server.wsreading import _waits_for_a_frame
from anywire.transports.wsread import QUIET_YIELD

from .test_ws_direct_read import WAIT, Pair, _connected, _echo


class Fed:
    """Records what the server's ``websockets`` protocol is given to parse (an attribute
    of that one object, the library's: no class of ours is patched)."""

    def __init__(self, pair: Pair) -> None:
        conn = pair.server.conn
        self.conn = conn
        self.chunks: list[bytes] = []
        receive = conn.receive_data

        def receive_data(data: bytes) -> None:
            self.chunks.append(bytes(data))
            receive(data)

        conn.receive_data = receive_data

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


@asynccontextmanager
async def _watched(calls: list[Any], max_size: int = 1 << 20) -> AsyncIterator[tuple[Pair, Fed]]:
    async with _connected(calls, max_size) as pair:
        yield pair, Fed(pair)


def _frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


def _text(seq: int, data: Any) -> bytes:
    return _frame(Opcode.TEXT, json.dumps(_echo(seq, data)).encode())


def _pongs(pair: Pair) -> list[bytes]:
    return [bytes(f.data) for f in pair.frames if f.opcode is Opcode.PONG]


def _check_bookkeeping(pair: Pair) -> None:
    """The protocol's idea of where websockets' parser stands is the truth."""
    server = pair.server
    conn = server.conn
    if server.owed == 0:
        assert not conn.reader.buffer and _waits_for_a_frame(conn.parser)
    elif server.owed > 0 or server.owed == -2:
        assert not _waits_for_a_frame(conn.parser)


async def test_whole_messages_never_reach_websockets() -> None:
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        pair.feed(b"".join(_text(seq, seq) for seq in (1, 2, 3)))
        pair.feed(_frame(Opcode.BINARY, b"\x00\x01"))  # (not our codec: no answer needed)
        assert calls == [1, 2, 3]
        assert fed.take() == b""
        await pair.until(lambda: pair.acks() == [1, 2, 3])


async def test_a_ping_in_a_stream_of_messages_goes_to_websockets_alone() -> None:
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        ping = _frame(Opcode.PING, b"are you there")
        pair.feed(_text(1, 1) + ping + _text(2, 2) + _text(3, 3))
        assert calls == [1, 2, 3]
        assert fed.take() == ping  # that frame only: the messages after it are read here
        await pair.until(lambda: pair.acks() == [1, 2, 3] and len(_pongs(pair)) == 1)
        assert _pongs(pair) == [b"are you there"]


async def test_a_fragmented_message_between_whole_ones_keeps_its_place() -> None:
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        text = json.dumps(_echo(2, "in parts")).encode()
        parts = _frame(Opcode.TEXT, text[:9], fin=False)
        parts += _frame(Opcode.PING, b"mid")  # a control frame between fragments
        parts += _frame(Opcode.CONT, text[9:30], fin=False) + _frame(Opcode.CONT, text[30:])
        pair.feed(_text(1, 1) + parts + _text(3, 3))
        assert calls == [1, "in parts", 3]
        assert fed.take() == parts
        await pair.until(lambda: pair.acks() == [1, "in parts", 3])
        assert _pongs(pair) == [b"mid"]


async def test_a_data_frame_inside_a_fragmented_message_is_a_protocol_error() -> None:
    """websockets' "expected a continuation frame": the whole frame after a fragment's
    start is websockets' to judge, not read here."""
    calls: list[Any] = []
    async with _watched(calls) as (pair, _):
        pair.feed(_frame(Opcode.TEXT, b'{"t":', fin=False) + _text(1, 1))
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 1002
        assert calls == []


async def test_a_close_after_messages_in_the_same_read() -> None:
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        pair.client.send_close(1000)
        close = b"".join(pair.client.data_to_send())
        after = _text(3, 3)
        pair.feed(_text(1, 1) + _text(2, 2) + close + after)
        assert calls == [1, 2]  # nothing after the close is read
        assert fed.take() == close + after  # websockets' to discard
        await pair.until(lambda: pair.wire.closed)
        assert pair.close_code() == 1000


async def test_bad_utf8_closes_1007_and_nothing_after_it_is_handled() -> None:
    calls: list[Any] = []
    async with _watched(calls) as (pair, _):
        bad = _frame(Opcode.TEXT, b'{"t":"event","s":2,"id":2,"e":"echo","d":"\xc3\x28"}')
        pair.feed(_text(1, 1) + bad + _text(3, 3))
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 1007
        assert calls == [1]


@pytest.mark.parametrize(
    "frame",
    [
        Frame(Opcode.TEXT, b"plain").serialize(mask=False),  # a client must mask
        bytes([0x83, 0x80]) + b"\x00" * 4,  # reserved opcode 3
        bytes([0x8B, 0x80]) + b"\x00" * 4,  # reserved opcode 0xB
        bytes([0xC1, 0x81]) + b"\x00" * 4 + b"x",  # RSV1 without permessage-deflate
        bytes([0x80, 0x81]) + b"\x00" * 4 + b"x",  # a continuation of nothing
    ],
    ids=["unmasked", "opcode-3", "opcode-b", "rsv1", "stray-continuation"],
)
async def test_what_websockets_refuses_it_still_refuses_with_1002(frame: bytes) -> None:
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        pair.feed(_text(1, 1) + frame + _text(2, 2))
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 1002
        assert calls == [1]
        assert fed.take().startswith(frame)


@pytest.mark.parametrize("length", [1001, 2**32, 2**63 - 1])
async def test_a_declared_length_over_ws_max_size_closes_1009(length: int) -> None:
    """Whatever it declares, with or without the payload behind it."""
    calls: list[Any] = []
    async with _watched(calls, max_size=1000) as (pair, _):
        head = bytes([0x82, 0xFF]) + struct.pack("!Q", length) + b"\x00" * 4
        pair.feed(_text(1, 1) + head + b"some of it")
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 1009
        assert calls == [1]


async def test_exactly_ws_max_size_is_taken() -> None:
    calls: list[Any] = []
    async with _watched(calls, max_size=1000) as (pair, fed):
        body = json.dumps(_echo(1, "")).encode()
        body = body.replace(b'"d": ""', b'"d": "' + b"x" * (1000 - len(body)) + b'"')
        assert len(body) == 1000
        pair.feed(_frame(Opcode.TEXT, body))
        assert len(calls) == 1
        assert fed.take() == b""


def _stream(base: int) -> tuple[bytes, list[Any]]:
    """A message, a ping, a fragmented message, a 16-bit-length message, a pong; the
    messages numbered on from ``base`` (the session takes each sequence number once, in
    order), their data padded so that the stream's size does not depend on ``base``."""

    def pad(seq: int, size: int) -> str:
        return "y" * (size - 2 * len(str(seq)))  # (its "s" and "id")

    data = [pad(base, 8), pad(base + 1, 200), pad(base + 2, 8), pad(base + 3, 8)]
    text = json.dumps(_echo(base + 2, data[2])).encode()
    wire = _text(base, data[0]) + _frame(Opcode.PING, b"p") + _text(base + 1, data[1])
    wire += _frame(Opcode.TEXT, text[:10], fin=False) + _frame(Opcode.CONT, text[10:])
    wire += _text(base + 3, data[3]) + _frame(Opcode.PONG, b"unasked")
    return wire, data


async def _handled(pair: Pair, calls: list[Any], expected: list[Any]) -> None:
    """Bounded: the loop's turns until ``calls`` is ``expected`` and reading is on."""
    async with asyncio.timeout(WAIT):
        while calls != expected or not pair.wire.reading:
            assert calls == expected[: len(calls)]
            await asyncio.sleep(0)


@pytest.mark.parametrize("part", range(4))
async def test_a_stream_cut_at_every_byte_offset(part: int) -> None:
    """Two reads, cut anywhere: the same messages, in order, one pong; and wherever the
    cut falls the protocol knows where websockets' parser stands (a frame it began in
    the first read is finished with the second's first bytes, and the read here goes on
    right after it). Every fourth offset from ``part`` on one connection: each stream
    costs the session's flood budget six tokens."""
    calls: list[Any] = []
    async with _watched(calls) as (pair, _):
        size = len(_stream(1)[0])
        cuts = range(part, size + 1, 4)
        for n, cut in enumerate(cuts):
            wire, expected = _stream(1 + 4 * n)
            assert len(wire) == size
            calls.clear()
            pair.feed(wire[:cut])
            _check_bookkeeping(pair)
            pair.feed(wire[cut:])
            _check_bookkeeping(pair)
            assert pair.server.owed == 0
            await _handled(pair, calls, expected)  # (16 quiet ones make a pause)
        await pair.until(lambda: len(_pongs(pair)) == len(cuts))


async def test_a_stream_one_byte_at_a_time() -> None:
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        wire, expected = _stream(1)
        for i in range(len(wire)):
            pair.feed(wire[i : i + 1])
            _check_bookkeeping(pair)
        assert calls == expected
        assert fed.take() == wire  # all of it websockets', as before: no whole frame came


async def test_after_a_frame_split_over_reads_whole_frames_are_read_here_again() -> None:
    """A pipelined stream's reads rarely end on a frame's end: the frame cut in two is
    websockets', and the next read's frames after its end are read here."""
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        one, two, three = _text(1, 1), _text(2, 2), _text(3, 3)
        pair.feed(one + two[:5])
        assert fed.take() == two[:5]
        pair.feed(two[5:] + three)
        assert fed.take() == two[5:]  # the end of its frame, not the next one
        assert calls == [1, 2, 3]
        head = _frame(Opcode.TEXT, json.dumps(_echo(4, "z" * 300)).encode())
        pair.feed(head[:1])  # inside the header
        assert pair.server.owed == -2
        pair.feed(head[1:3])  # still inside it (a 16-bit length)
        pair.feed(head[3:] + _text(5, 5))
        assert fed.take() == head
        assert calls == [1, 2, 3, "z" * 300, 5]
        await pair.until(lambda: pair.acks() == [1, 2, 3, "z" * 300, 5])


async def test_a_pause_in_the_middle_of_a_read_keeps_the_order_and_answers_the_ping() -> None:
    """The sink refuses a message (16 that wrote nothing: the quiet yield): the rest of
    the read is still read, a ping in it answered at once as websockets answered it,
    the messages wait in order, and reading resumes after the loop's turn."""
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        quiet_ones = [pair.message({"t": "rx", "n": 0}) for _ in range(QUIET_YIELD)]
        ping = _frame(Opcode.PING, b"while paused")
        pair.feed(b"".join([*quiet_ones, _text(1, 1), ping, _text(2, 2)]))
        assert not pair.wire.reading and calls == []
        assert fed.take() == ping
        await pair.until(lambda: _pongs(pair) == [b"while paused"])
        await _handled(pair, calls, [1, 2])
        await pair.until(lambda: pair.acks() == [1, 2])


async def test_a_lone_small_frame_read_while_paused_waits_its_turn() -> None:
    """A read that is one small whole frame (the short path: a receipt, a request) while
    the sink's refusal holds messages back: it waits behind them, in order."""
    calls: list[Any] = []
    async with _watched(calls) as (pair, _):
        quiet_ones = [pair.message({"t": "rx", "n": 0}) for _ in range(QUIET_YIELD)]
        pair.feed(b"".join([*quiet_ones, _text(1, 1)]))
        assert not pair.wire.reading and calls == []
        lone = _text(2, 2)
        assert len(lone) < 6 + 126  # one small frame, alone in its read
        pair.feed(lone)
        assert calls == []
        await _handled(pair, calls, [1, 2])
        await pair.until(lambda: pair.acks() == [1, 2])
        assert not any(b'"error"' in f.data for f in pair.frames)


async def test_a_lone_small_frame_over_ws_max_size_closes_1009() -> None:
    """``ws_max_size`` holds for the short path too (websockets' own limit, set on its
    connection object here: a connect frame is longer than any small frame)."""
    calls: list[Any] = []
    async with _watched(calls) as (pair, fed):
        pair.server.conn.max_message_size = 40
        lone = _text(1, "x" * 40)
        assert len(lone) < 6 + 126
        pair.feed(lone)
        await pair.until(lambda: pair.close_code() is not None)
        assert pair.close_code() == 1009
        assert calls == [] and fed.take() == lone


async def test_with_permessage_deflate_every_frame_is_websockets() -> None:
    """Its frames' payloads are compressed (RSV1): none is read here, and the messages
    arrive whole and in order, decompressed by websockets."""
    calls: list[Any] = []
    async with _connected(calls, deflate=True) as pair:
        assert pair.server.conn.extensions  # negotiated
        fed = Fed(pair)
        wire = b"".join(pair.message(_echo(seq, "z" * 50 * seq)) for seq in (1, 2, 3))
        pair.feed(wire)
        assert calls == ["z" * 50, "z" * 100, "z" * 150]
        assert fed.take() == wire
        await pair.until(lambda: len(pair.acks()) == 3)
