"""Property tests of the codecs and the frame parser (issue #13, "Fuzzing"): for any
value, encoding either refuses it cleanly (TypeError, exactly when it breaks the shared
data model) or round-trips it on both codecs; for any bytes, text, structure or mutation
of a golden vector, decoding yields frames or a protocol error, never another
exception. Profiles: tests/unit/conftest.py."""

from __future__ import annotations

import contextlib
import datetime
import math
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from anywire.core.codec import Codec, JsonCodec
from anywire.core.errors import RemoteProtocolError
from anywire.core.frames import Event, parse_frame
from anywire.core.values import INT_MAX, INT_MIN, value_error
from anywire.server.codecs import make_codecs
from anywire.transports.base import decode_frames

from .conftest import load_vectors

DEPTH = 8  # small, so generated values do cross it
CODECS = make_codecs(max_depth=DEPTH)
BOTH = list(CODECS.values())

# Integers around every boundary that matters: 2^53 (protocol fields), the MessagePack
# range, and far beyond it.
edge_ints = st.sampled_from(
    [0, -1, 2**53 - 1, 2**53, INT_MAX, INT_MAX + 1, INT_MIN, INT_MIN - 1, 10**30, -(10**30)]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | edge_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.binary(max_size=30)
)
keys = st.text(max_size=8).filter(lambda k: k != "$bin")
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal as the data model sees it (tuples are arrays)."""
    if isinstance(a, list | tuple):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def _nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    return 0


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(map(_has_lone_surrogate, value)) or any(map(_has_lone_surrogate, value.values()))
    if isinstance(value, list):
        return any(map(_has_lone_surrogate, value))
    return False


@given(value=values)
def test_any_value_round_trips_or_is_refused_by_both_codecs_alike(value: Any) -> None:
    frame = {"t": "event", "s": 1, "id": 2, "e": "x", "d": value}
    refused = value_error(value, None, keys=False) is not None or _has_lone_surrogate(value)
    for codec in BOTH:
        try:
            data = codec.encode(frame)
        except TypeError:
            assert refused, f"{codec.name} refused a valid value"
            continue
        assert not refused, f"{codec.name} encoded a value outside the data model"
        frames, error = decode_frames(codec, data, 10)
        if _nesting(value) + 1 > DEPTH:  # the frame's own map is a level
            assert error is not None and "deeper" in error.message
            continue
        assert error is None, error
        (event,) = frames
        assert isinstance(event, Event) and _same(value, event.d)


# The standard library alone: what the server's JSON codec (msgspec's encoder for plain
# values) must write byte for byte, and refuse alike.
REFERENCE_JSON = JsonCodec(max_depth=DEPTH)
plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | edge_ints
    | st.text(max_size=30)
    # (around the surrogates, lone ones included: msgspec raises another error for them)
    | st.text(
        st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010, categories=None), max_size=3
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def _encoded(codec: Codec, obj: dict[str, Any]) -> bytes | str:
    try:
        return codec.encode(obj)
    except TypeError:
        return "refused"


@given(value=values | plain_values | st.tuples(plain_values) | st.sets(st.integers()))
def test_the_json_codec_writes_what_the_standard_library_writes(value: Any) -> None:
    for obj in ({"id": 7, "ok": True, "d": value}, {"d": [value, {"k": value}]}):
        assert _encoded(CODECS["json"], obj) == _encoded(REFERENCE_JSON, obj)


def test_the_json_codec_leaves_what_msgspec_writes_otherwise_to_the_standard_library() -> None:
    class Text(str):
        pass

    deep: list[Any] = []
    for _ in range(40):
        deep = [deep]
    circular: dict[str, Any] = {}
    circular["self"] = circular
    for value in (
        1e16,  # msgspec: 1e16
        1e-7,  # msgspec: 1e-7, the standard library 1e-07
        float("nan"),  # msgspec: null
        b"\x00\xff",  # msgspec: base64 text, not {"$bin": ...}
        bytearray(b"ab"),
        {1: "int key"},
        {True: "bool key"},
        Text("a str subclass"),
        datetime.date(2026, 12, 7),  # refused by the standard library, written by msgspec
        deep,
        circular,
        2**64,
        -(2**63) - 1,
        "\ud800",  # a lone surrogate: refused by both
    ):
        obj = {"d": value}
        assert _encoded(CODECS["json"], obj) == _encoded(REFERENCE_JSON, obj), value


@given(data=st.binary(max_size=200))
def test_any_bytes_decode_to_frames_or_a_protocol_error(data: bytes) -> None:
    for codec in BOTH:
        _, error = decode_frames(codec, data, 10)
        assert error is None or isinstance(error, RemoteProtocolError)


@given(text=st.text(max_size=200))
def test_any_text_decodes_to_frames_or_a_protocol_error(text: str) -> None:
    _, error = decode_frames(CODECS["json"], text, 10)
    assert error is None or isinstance(error, RemoteProtocolError)


FRAME_TYPES = ["event", "ack", "join", "leave", "rx", "ping", "pong", "close", "error",
               "connect", "resume", "hello", "auth"]  # fmt: skip
FIELDS = ["t", "s", "id", "e", "d", "r", "o", "ok", "err", "n", "meta", "since", "ticket",
          "last", "sid", "recovered", "seq", "streams", "c", "m", "token"]  # fmt: skip
frame_like = st.dictionaries(
    st.sampled_from(FIELDS) | keys, values | st.sampled_from(FRAME_TYPES), max_size=8
).map(lambda d: d if "t" in d else {**d, "t": "event"})


@given(obj=frame_like | values)
def test_any_structure_parses_to_a_frame_or_a_protocol_error(obj: Any) -> None:
    for check in (False, True):
        with contextlib.suppress(RemoteProtocolError):
            parse_frame(obj, check, DEPTH)


@given(obj=frame_like)
def test_any_frame_like_map_on_the_wire_is_decoded_or_refused(obj: Any) -> None:
    assume(not _has_lone_surrogate(obj))
    for codec in BOTH:
        try:
            data = codec.encode(obj)
        except TypeError:
            continue
        frames, error = decode_frames(codec, data, 10)
        assert error is None or isinstance(error, RemoteProtocolError)
        assert len(frames) + (error is not None) == 1


GOLDEN = [v for v in load_vectors("frames.json")]


@given(
    index=st.integers(0, len(GOLDEN) - 1),
    codec_name=st.sampled_from(["json", "msgpack"]),
    edits=st.lists(
        st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]),
                  st.integers(0, 10_000), st.integers(0, 255)),
        min_size=1, max_size=4,
    ),
)  # fmt: skip
def test_mutated_golden_vectors_decode_or_are_refused(
    index: int, codec_name: str, edits: list[tuple[str, int, int]]
) -> None:
    vector = GOLDEN[index]
    codec: Codec = CODECS[codec_name]
    data = bytearray(
        vector["json"].encode() if codec_name == "json" else bytes.fromhex(vector["msgpack"])
    )
    for op, where, byte in edits:
        at = where % (len(data) + 1)
        if op == "flip" and data:
            data[at % len(data)] ^= 1 << (byte % 8)
        elif op == "insert":
            data[at:at] = bytes([byte])
        elif op == "delete" and data:
            del data[at % len(data)]
        elif op == "truncate":
            del data[at:]
    _, error = decode_frames(codec, bytes(data), 10)
    assert error is None or isinstance(error, RemoteProtocolError)


def test_the_golden_vectors_are_what_the_mutations_start_from() -> None:
    assert len(GOLDEN) > 20
    for vector in GOLDEN:
        for name, data in (("json", vector["json"]), ("msgpack", bytes.fromhex(vector["msgpack"]))):
            frames, error = decode_frames(CODECS[name], data, 100)
            assert error is None and frames, vector["name"]
