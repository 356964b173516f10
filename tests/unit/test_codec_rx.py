"""``Codec.decode_rx`` (#17: the receipt's short path): a message that is exactly one
``rx`` frame as clients write it gives its ``n``; anything else None, so the reference
path (``decode`` and ``parse_frame``) reads or refuses it in its own words. Never a
different answer from the reference path, on either codec, for bytes or text."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anywire.core.codec import Codec
from anywire.core.errors import RemoteProtocolError
from anywire.core.frames import UINT_LIMIT, Rx, parse_frame
from anywire.server.codecs import make_codecs

CODECS = make_codecs()
JSON, MSGPACK = CODECS["json"], CODECS["msgpack"]
RX_HEAD = msgpack.packb({"t": "rx", "n": 0})[:-1]


def reference(codec: Codec, data: bytes | str) -> Any:
    """What the general path makes of ``data``: ``n`` for a lone Rx, else a marker."""
    try:
        frame = parse_frame(codec.decode(data), codec.suspect(data), codec.max_depth)
    except RemoteProtocolError:
        return "refused"
    return frame.n if type(frame) is Rx else "another frame"


def agrees(codec: Codec, data: bytes | str) -> bool:
    n = codec.decode_rx(data)
    return n is None or n == reference(codec, data)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 12345, UINT_LIMIT - 1])
def test_the_clients_receipts_are_read(n: int) -> None:
    text = f'{{"t":"rx","n":{n}}}'
    assert JSON.decode_rx(text.encode()) == n == JSON.decode_rx(text)
    assert JSON.decode_rx(JSON.rx(n)) == n
    assert MSGPACK.decode_rx(msgpack.packb({"t": "rx", "n": n})) == n
    assert MSGPACK.decode_rx(MSGPACK.rx(n)) == n


@pytest.mark.parametrize(
    "data",
    [
        '{"t":"rx","n":01}',
        '{"t":"rx","n":-1}',
        '{"t":"rx","n":+1}',
        '{"t":"rx","n":1.5}',
        '{"t":"rx","n":1e2}',
        '{"t":"rx","n":}',
        '{"t":"rx","n":"1"}',
        f'{{"t":"rx","n":{UINT_LIMIT}}}',
        '{"t":"rx","n":1 }',  # valid JSON, another spelling: the reference path's
        '{"t":"rx","n":1,"x":0}',
        '{"t": "rx", "n": 1}',
        '{"n":1,"t":"rx"}',
        '{"t":"rx","n":1}}',
        '{"t":"rx","n":\u0661}',  # a digit one of another script
        '{"t":"rx","n":\uff11}',  # a fullwidth digit one
    ],
)
def test_other_json_spellings_take_the_reference_path(data: str) -> None:
    assert JSON.decode_rx(data) is None
    assert JSON.decode_rx(data.encode()) is None


@pytest.mark.parametrize(
    "data",
    [
        RX_HEAD,  # no value
        RX_HEAD + b"\xff",  # negative fixint
        RX_HEAD + b"\xd0\x01",  # int 8
        RX_HEAD + b"\xcb" + bytes(8),  # float 64
        RX_HEAD + b"\x01\x00",  # something after n
        RX_HEAD + b"\xcd\x01",  # uint 16 cut short
        RX_HEAD + b"\xcf" + UINT_LIMIT.to_bytes(8, "big"),
        RX_HEAD + b"\xcf" + bytes([0xFF] * 8),
        msgpack.packb({"n": 1, "t": "rx"}),
        msgpack.packb([{"t": "rx", "n": 1}]),
    ],
)
def test_other_msgpack_spellings_take_the_reference_path(data: bytes) -> None:
    assert MSGPACK.decode_rx(data) is None
    assert MSGPACK.decode_rx(data.decode("latin-1")) is None  # text: never


@pytest.mark.parametrize(("kind", "size"), [(0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)])
def test_every_msgpack_unsigned_format_is_read(kind: int, size: int) -> None:
    n = 2 ** (8 * size) - 1 if size < 8 else UINT_LIMIT - 1
    data = RX_HEAD + bytes([kind]) + n.to_bytes(size, "big")
    assert MSGPACK.decode_rx(data) == n == reference(MSGPACK, data)


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_any_integer_agrees_with_the_reference_path(n: int) -> None:
    text = f'{{"t":"rx","n":{n}}}'
    assert agrees(JSON, text) and agrees(JSON, text.encode())
    if -(2**63) <= n < 2**64:
        assert agrees(MSGPACK, msgpack.packb({"t": "rx", "n": n}))


@given(st.binary(max_size=40), st.binary(max_size=12), st.binary(max_size=4))
def test_any_bytes_agree_with_the_reference_path(tail: bytes, digits: bytes, end: bytes) -> None:
    assert agrees(JSON, b'{"t":"rx","n":' + digits + end)
    assert agrees(JSON, tail)
    assert agrees(MSGPACK, RX_HEAD + tail)
    assert agrees(MSGPACK, tail)


@given(st.text(alphabet="0123456789-+.eE }\u0661\uff11", max_size=20))
def test_any_text_agrees_with_the_reference_path(digits: str) -> None:
    text = '{"t":"rx","n":' + digits + "}"
    assert agrees(JSON, text)
    assert agrees(JSON, text.encode())
