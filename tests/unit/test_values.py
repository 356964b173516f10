"""The shared data model (issue #13, items 3 and 6): integers in the MessagePack range,
finite floats, string keys and bounded nesting, refused in both directions: a client's
frame holding one is answered 4502 (the frame's own error, its sequence number used up),
and the server cannot encode one for any client. Pure: no loop, no server."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest

from anywire.core.codec import Codec
from anywire.core.values import INT_MAX, INT_MIN, value_error
from anywire.server.codecs import make_codecs
from anywire.transports.base import decode_frames

DEPTH = 32
CODECS = make_codecs(max_depth=DEPTH)
JSON, MSGPACK = CODECS["json"], CODECS["msgpack"]


def _nest(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def _encode(codec: Codec, frame: dict[str, Any]) -> bytes:
    if codec is JSON:
        import json

        return json.dumps(frame, separators=(",", ":")).encode()
    return bytes(msgpack.packb(frame, use_bin_type=True))


@pytest.mark.parametrize(
    "value,problem",
    [
        (INT_MAX, None),
        (INT_MIN, None),
        (INT_MAX + 1, "integer"),
        (INT_MIN - 1, "integer"),
        ([1, {"a": [2**70]}], "integer"),
        (float("nan"), "not finite"),
        ({"a": [float("-inf")]}, "not finite"),
        ({1: "a"}, "keys"),
        ({b"k": "a"}, "keys"),
        (True, None),
        (_nest(DEPTH), None),
        (_nest(DEPTH + 1), "deeper"),
        (_nest(100_000), "deeper"),  # iterative: no RecursionError however deep
    ],
)
def test_value_error_names_what_breaks_the_data_model(value: Any, problem: str | None) -> None:
    found = value_error(value, DEPTH)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize("value", [INT_MAX + 1, INT_MIN - 1, float("nan"), float("inf")])
def test_the_server_cannot_encode_a_value_another_codec_could_not_carry(
    codec: Codec, value: Any
) -> None:
    with pytest.raises(TypeError):
        codec.encode({"t": "event", "s": 1, "e": "x", "d": {"deep": [value]}})
    with pytest.raises(TypeError):
        codec.encode_body({"id": 1, "ok": True, "d": value})


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_the_range_limits_themselves_encode(codec: Codec) -> None:
    data = [INT_MAX, INT_MIN, 1.5, "1234567890123456789012345"]
    message = codec.encode({"t": "event", "s": 1, "e": "x", "d": data})
    frames, error = decode_frames(codec, message, 9)
    assert error is None and frames[0].d == data  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [INT_MAX + 1, INT_MIN - 1, 10**40])
def test_a_json_integer_outside_the_range_is_the_frames_own_4502(value: int) -> None:
    data = b'{"t":"event","s":1,"id":7,"e":"echo","d":{"n":%d}}' % value
    for message in (data, data.decode()):
        frames, error = decode_frames(JSON, message, 9)
        assert frames == [] and error is not None
        assert error.code == 4502 and "integer" in error.message
        assert (error.seq, error.ack_id) == (1, 7)  # used up and answered: nothing stalls


@pytest.mark.parametrize(
    "packed",
    [
        b"\xcb" + struct.pack(">d", float("nan")),
        b"\xcb" + struct.pack(">d", float("-inf")),
        b"\xca" + struct.pack(">f", float("inf")),
    ],
    ids=["nan64", "-inf64", "inf32"],
)
def test_a_msgpack_non_finite_float_is_the_frames_own_4502(packed: bytes) -> None:
    head = msgpack.packb({"t": "event", "s": 1, "id": 7, "e": "x"})
    message = bytes([head[0] + 1]) + head[1:] + msgpack.packb("d") + packed
    frames, error = decode_frames(MSGPACK, message, 9)
    assert frames == [] and error is not None and "finite" in error.message
    assert (error.seq, error.ack_id) == (1, 7)


def test_a_msgpack_binary_map_key_is_refused() -> None:
    message = msgpack.packb({"t": "event", "s": 1, "e": "x", "d": {b"k": 1}}, use_bin_type=True)
    frames, error = decode_frames(MSGPACK, message, 9)
    assert frames == [] and error is not None and "keys" in error.message


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_nesting_is_bounded_per_frame(codec: Codec) -> None:
    ok = _encode(codec, {"t": "event", "s": 1, "e": "x", "d": _nest(DEPTH - 1)})
    deep = _encode(codec, {"t": "event", "s": 1, "id": 2, "e": "x", "d": _nest(DEPTH)})
    assert decode_frames(codec, ok, 9)[1] is None
    frames, error = decode_frames(codec, deep, 9)
    assert frames == [] and error is not None and "deeper" in error.message
    assert (error.seq, error.ack_id) == (1, 2)
    # In a batch, the frames before the deep one still count.
    batch = _encode(codec, [{"t": "ping"}, {"t": "event", "s": 1, "e": "x", "d": _nest(DEPTH)}])  # type: ignore[arg-type]
    frames, error = decode_frames(codec, batch, 9)
    assert len(frames) == 1 and error is not None


@pytest.mark.parametrize("levels", [2_000, 100_000])
def test_nesting_beyond_the_decoder_is_a_4502_not_a_recursion_error(levels: int) -> None:
    for message in (b"[" * levels + b"]" * levels, b"\x91" * levels + b"\xc0"):
        codec = JSON if message[:1] == b"[" else MSGPACK
        frames, error = decode_frames(codec, message, 9)
        assert frames == [] and error is not None and error.code == 4502
