"""The read of whole client frames (anywire.server.wsparse), with no loop and no socket:
every field of the header, each checked against what ``websockets`` writes and parses
for the same bytes; reads cut at every byte; hostile headers. What the protocol does with
the frames it does not take is test_ws_fast_read.py's."""

from __future__ import annotations

import os
import random
import struct

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from anywire.server.wsparse import HEADER_MAX, apply_mask, frame_size, read_messages

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70001]


def client_frame(opcode: Opcode, data: bytes, fin: bool = True, **rsv: bool) -> bytes:
    """A frame as a client sends it (masked), by ``websockets``."""
    return Frame(opcode, data, fin, **rsv).serialize(mask=True)


def header(first: int, length: int, masked: bool = True, form: int | None = None) -> bytes:
    """A header by hand: ``form`` forces the 7-bit, 16-bit or 64-bit length (7, 16, 64)."""
    form = form or (7 if length < 126 else 16 if length < 65536 else 64)
    bit = 0x80 if masked else 0
    if form == 7:
        out = bytes([first, bit | length])
    elif form == 16:
        out = bytes([first, bit | 126]) + struct.pack("!H", length)
    else:
        out = bytes([first, bit | 127]) + struct.pack("!Q", length)
    return out + (b"\x01\x02\x03\x04" if masked else b"")


def parse_all(data: bytes) -> list[Frame]:
    """``websockets``' own parse of client frames (no limit, no extension)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("size", SIZES)
def test_each_length_form_is_read_as_websockets_reads_it(size: int, binary: bool) -> None:
    payload = os.urandom(size)
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    wire = client_frame(opcode, payload)
    assert len(wire) == size + {True: 6, False: 8 if size < 65536 else 14}[size < 126]
    assert read_messages(wire, 0, None) == ([(payload, binary)], len(wire))
    assert frame_size(wire, 0) == len(wire)
    (theirs,) = parse_all(wire)
    assert theirs.data == payload


def test_a_length_in_a_longer_form_than_needed_is_read_too() -> None:
    """RFC 6455 asks for the shortest form; websockets accepts any, and so does this."""
    payload = b"hello"
    for form in (7, 16, 64):
        wire = header(0x81, len(payload), form=form)
        wire += apply_mask(payload, b"\x01\x02\x03\x04")
        assert read_messages(wire, 0, None) == ([(payload, False)], len(wire))
        assert frame_size(wire, 0) == len(wire)
        assert parse_all(wire)[0].data == payload


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 7, 8, 9, 1000])
def test_unmasking_is_websockets_unmasking(size: int) -> None:
    data, mask = os.urandom(size), os.urandom(4)
    assert apply_mask(apply_mask(data, mask), mask) == data
    assert Frame(Opcode.BINARY, data).serialize(mask=True)  # (a masked frame of it exists)
    wire = header(0x82, size)[:-4] + mask + apply_mask(data, mask)
    assert read_messages(wire, 0, None)[0] == [(data, True)]


@pytest.mark.parametrize("size", [125, 126, 65535, 65536])
def test_the_limit_takes_a_message_of_exactly_its_size_and_stops_at_one_more(size: int) -> None:
    wire = client_frame(Opcode.TEXT, b"x" * size)
    assert read_messages(wire, 0, size)[1] == len(wire)
    assert read_messages(wire, 0, size - 1) == ([], 0)


@pytest.mark.parametrize(
    "first",
    [
        0x01,  # text, FIN clear (a fragment's start)
        0x02,  # binary, FIN clear
        0x80,  # continuation, FIN
        0x00,  # continuation
        0x88,  # close
        0x89,  # ping
        0x8A,  # pong
        *(0x80 | op for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)),  # reserved opcodes
        0xC1,  # RSV1 (permessage-deflate's bit)
        0xA1,  # RSV2
        0x91,  # RSV3
        0xC2,
    ],
)
def test_anything_but_a_whole_plain_data_frame_is_left(first: int) -> None:
    """Left at its first byte, with what came before taken."""
    before = client_frame(Opcode.TEXT, b"before")
    odd = header(first, 3) + b"abc"
    assert read_messages(before + odd + before, 0, None) == ([(b"before", False)], len(before))
    assert frame_size(odd, 0) == len(odd)


def test_an_unmasked_client_frame_is_left_for_websockets_to_refuse() -> None:
    wire = Frame(Opcode.TEXT, b"plain").serialize(mask=False)
    assert read_messages(wire, 0, None) == ([], 0)
    assert frame_size(wire, 0) == len(wire)  # 2 + 5: no mask in the size
    with pytest.raises(Exception, match="incorrect masking"):
        parse_all(wire)


@pytest.mark.parametrize("length", [2**16, 2**31, 2**63 - 1, 2**64 - 1])
def test_a_huge_declared_length_is_not_taken_and_not_a_crash(length: int) -> None:
    wire = header(0x82, length, form=64) + b"tiny"
    assert read_messages(wire, 0, None) == ([], 0)  # incomplete, whatever it declares
    assert read_messages(wire, 0, 1 << 20) == ([], 0)  # over the limit
    assert frame_size(wire, 0) == HEADER_MAX + length


def test_frame_size_needs_the_whole_length_only() -> None:
    """-1 until the length's bytes are all there; the mask need not have come."""
    for length, form in ((5, 7), (300, 16), (70000, 64)):
        wire = header(0x81, length, form=form)
        need = {7: 2, 16: 4, 64: 10}[form]
        for cut in range(len(wire) + 1):
            expected = -1 if cut < need else len(wire) + length
            assert frame_size(wire[:cut], 0) == expected, (length, cut)


def _mixed(rng: random.Random) -> list[tuple[str, bytes, bytes]]:
    """A client's stream: (kind, payload, wire) of whole messages, controls, fragments."""
    out: list[tuple[str, bytes, bytes]] = []
    for _ in range(40):
        kind = rng.choice(["text", "text", "binary", "ping", "pong", "fragments"])
        size = rng.choice([0, 1, 5, 125, 126, 200, 65535, 65536])
        payload = bytes(rng.getrandbits(8) for _ in range(min(size, 300))) * (size // 300 + 1)
        payload = payload[:size]
        if kind == "text":
            out.append((kind, payload, client_frame(Opcode.TEXT, payload)))
        elif kind == "binary":
            out.append((kind, payload, client_frame(Opcode.BINARY, payload)))
        elif kind in ("ping", "pong"):
            small = payload[:125]
            op = Opcode.PING if kind == "ping" else Opcode.PONG
            out.append((kind, small, client_frame(op, small)))
        else:
            cut = len(payload) // 2
            wire = client_frame(Opcode.BINARY, payload[:cut], fin=False)
            wire += client_frame(Opcode.PING, b"in between")
            wire += client_frame(Opcode.CONT, payload[cut:])
            out.append((kind, payload, wire))
    return out


def _drive(reads: list[bytes]) -> list[tuple[str, bytes]]:
    """What a caller of this module sees of ``reads``: whole messages taken here, every
    other frame counted out with frame_size and parsed by websockets, the rest of a read
    carried into the next (as websockets' buffer holds it)."""
    seen: list[tuple[str, bytes]] = []
    carry = b""
    for chunk in reads:
        data = carry + chunk
        start = 0
        while True:
            messages, start = read_messages(data, start, None)
            seen += [("binary" if b else "text", m) for m, b in messages]
            size = frame_size(data, start)
            if size < 0 or start + size > len(data):
                break
            for frame in parse_all(data[start : start + size]):
                seen.append((frame.opcode.name.lower(), frame.data))
            start += size
        carry = data[start:]
    assert carry == b""
    return seen


def _expected(stream: list[tuple[str, bytes, bytes]]) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for kind, payload, wire in stream:
        if kind == "fragments":
            out += [(f.opcode.name.lower(), f.data) for f in parse_all(wire)]
        else:
            out.append((kind, payload))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_a_mixed_stream_cut_at_random_reads_gives_every_frame_in_order(seed: int) -> None:
    rng = random.Random(seed)
    stream = _mixed(rng)
    wire = b"".join(w for _, _, w in stream)
    cuts = sorted(rng.sample(range(1, len(wire)), 60))
    reads = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert _drive(reads) == _expected(stream)


def test_a_short_stream_cut_at_every_byte_offset() -> None:
    stream = [
        ("text", b"one", client_frame(Opcode.TEXT, b"one")),
        ("ping", b"p", client_frame(Opcode.PING, b"p")),
        ("binary", b"\x00" * 130, client_frame(Opcode.BINARY, b"\x00" * 130)),
        ("text", b"", client_frame(Opcode.TEXT, b"")),
    ]
    wire = b"".join(w for _, _, w in stream)
    for cut in range(len(wire) + 1):
        for second in range(cut, len(wire) + 1):
            reads = [wire[:cut], wire[cut:second], wire[second:]]
            assert _drive(reads) == _expected(stream), (cut, second)
