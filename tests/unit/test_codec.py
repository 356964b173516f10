"""Codecs: byte-exact golden vectors, the encode-once broadcast splice, batches, bytes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import pytest

from anywire.core.closecodes import CloseCode
from anywire.core.codec import Codec, JsonCodec, MsgpackCodec, Outgoing
from anywire.core.errors import RemoteProtocolError
from anywire.core.frames import parse_frame
from anywire.core.session import Heartbeat, ServerSession
from anywire.core.settings import Settings
from tests.unit.conftest import load_vectors, make_codec
from tests.vectors import generate

FRAMES = load_vectors("frames.json")
BY_NAME = {case["name"]: case for case in FRAMES}
CODECS = ["json", "msgpack"]

# Canonical key order of every frame type (optional keys are simply absent).
ORDER = {
    "connect": ["t", "ticket"],
    "resume": ["t", "ticket", "last"],
    "hello": ["t", "sid", "recovered", "seq", "last", "streams", "expires_in"],
    "event": ["t", "s", "id", "e", "d", "r", "o"],
    "ack": ["t", "s", "id", "ok", "d", "err"],
    "join": ["t", "s", "id", "r", "meta", "since"],
    "leave": ["t", "s", "id", "r"],
    "auth": ["t", "id", "token"],
    "ping": ["t"],
    "pong": ["t"],
    "rx": ["t", "n"],
    "error": ["t", "c", "m"],
    "close": ["t", "c", "m"],
}


def expected_bytes(case: dict[str, Any], name: str) -> bytes:
    return case["json"].encode("utf-8") if name == "json" else bytes.fromhex(case["msgpack"])


def same(a: Any, b: Any) -> bool:
    """Deep equality that also compares types (True != 1, b"x" != "x", 1.0 != 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def single_cases() -> list[dict[str, Any]]:
    return [c for c in FRAMES if isinstance(c["frame"], dict)]


def batch_cases() -> list[dict[str, Any]]:
    return [c for c in FRAMES if isinstance(c["frame"], list)]


# -- the vector files themselves ----------------------------------------------------------


def test_vector_files_match_the_generator() -> None:
    """The committed files are exactly what the (deterministic) generator produces."""
    frames = generate.render(generate.build_frames())
    invalid = generate.render(generate.build_invalid())
    assert frames == generate.render(generate.build_frames())
    assert (generate.HERE / "frames.json").read_text(encoding="utf-8") == frames
    assert (generate.HERE / "invalid.json").read_text(encoding="utf-8") == invalid


def test_vectors_cover_every_frame_type() -> None:
    seen = {c["frame"]["t"] for c in single_cases()}
    assert seen == set(ORDER)
    assert batch_cases(), "at least one batch vector"


# Derived by hand from the MessagePack and JSON specifications, not from the codecs.
HAND_CHECKED = {
    "ping": ('{"t":"ping"}', "81" + "a174" + "a470696e67"),
    "rx": ('{"t":"rx","n":16}', "82" + "a174" + "a27278" + "a16e" + "10"),
    "event_minimal": (
        '{"t":"event","s":1,"e":"a","d":null}',
        "84" + "a174" + "a56576656e74" + "a173" + "01" + "a165" + "a161" + "a164" + "c0",
    ),
    "event_float": (
        '{"t":"event","s":23,"e":"f","d":1.5}',
        "84a174a56576656e74" + "a173" + "17" + "a165a166" + "a164" + "cb3ff8000000000000",
    ),
    "event_binary": (
        '{"t":"event","s":6,"e":"blob","d":{"$bin":"AAEC/v8="}}',
        "84a174a56576656e74" + "a17306" + "a165a4626c6f62" + "a164" + "c405000102feff",
    ),
    "event_unicode_non_bmp": (
        '{"t":"event","s":11,"e":"emoji","d":"smile 😀 and 𝄞"}',
        "84a174a56576656e74a1730ba165a5656d6f6a69a164"
        + "b3"  # fixstr of 19 UTF-8 bytes
        + "736d696c6520"
        + "f09f9880"
        + "20616e6420"
        + "f09d849e",
    ),
    "event_all_fields": (
        '{"t":"event","s":5,"id":1,"e":"x","d":true,"r":"r","o":["user:/:u1","e",0]}',
        "87a174a56576656e74a17305a2696401a165a178a164c3a172a172"
        + "a16f93"
        + "a9757365723a2f3a7531"
        + "a165"
        + "00",
    ),
    "close": (
        '{"t":"close","c":4000,"m":"server restarting"}',
        "83a174a5636c6f7365" + "a163" + "cd0fa0" + "a16d" + "b1" + b"server restarting".hex(),
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_CHECKED))
def test_hand_checked_vectors(name: str) -> None:
    text, hexdata = HAND_CHECKED[name]
    assert BY_NAME[name]["json"] == text
    assert BY_NAME[name]["msgpack"] == hexdata


@pytest.mark.parametrize(
    ("name", "tail"),
    [
        ("event_int_0", "00"),
        ("event_int_127", "7f"),
        ("event_int_128", "cc80"),
        ("event_int_255_256", "92" + "ccff" + "cd0100"),
        ("event_int_65535_65536", "92" + "cdffff" + "ce00010000"),
        ("event_int_2_32", "92" + "ceffffffff" + "cf0000000100000000"),
        ("event_int_2_53_minus_1", "cf001fffffffffffff"),
        (
            "event_int_negative",
            "97" + "ff" + "e0" + "d0df" + "d080" + "d1ff7f" + "d18000" + "d2ffff7fff",
        ),
        ("event_bool", "92c3c2"),
        ("event_null", "c0"),
    ],
)
def test_msgpack_integer_widths(name: str, tail: str) -> None:
    """Each integer takes the smallest MessagePack form (the value of ``d`` comes last)."""
    assert BY_NAME[name]["msgpack"].endswith("a164" + tail)


@pytest.mark.parametrize("case", single_cases(), ids=lambda c: c["name"])
def test_json_text_is_canonical(case: dict[str, Any]) -> None:
    text = case["json"]
    pairs = json.loads(text, object_pairs_hook=lambda p: p)
    keys = [k for k, _ in pairs]
    order = ORDER[case["frame"]["t"]]
    assert keys == [k for k in order if k in keys], "canonical key order"
    assert keys[0] == "t"
    # Compact: re-serializing the parsed value compactly gives the very same text.
    compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    assert text == compact
    # Non-ASCII is written as is, never \\u-escaped (control characters still are).
    assert "\\u" not in text.replace("\\u0000", "")


def test_non_ascii_is_not_escaped() -> None:
    assert "😀" in BY_NAME["event_unicode_non_bmp"]["json"]
    assert "日本語" in BY_NAME["event_unicode"]["json"]
    assert BY_NAME["event_escapes"]["json"].endswith('nul \\u0000"}')


# -- encoding and decoding every vector ---------------------------------------------------


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("case", single_cases(), ids=lambda c: c["name"])
def test_vector_encodes_byte_for_byte(codec_name: str, case: dict[str, Any]) -> None:
    codec = make_codec(codec_name)
    frame = generate.from_jsonable(case["frame"])
    want = expected_bytes(case, codec_name)
    assert codec.encode(parse_frame(frame).to_wire()) == want
    assert codec.encode(frame) == want


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("case", single_cases(), ids=lambda c: c["name"])
def test_vector_decodes_back_equal(codec_name: str, case: dict[str, Any]) -> None:
    codec = make_codec(codec_name)
    frame = generate.from_jsonable(case["frame"])
    decoded = codec.decode(expected_bytes(case, codec_name))
    assert same(decoded, frame)
    assert parse_frame(decoded) == parse_frame(frame)
    # And the parsed frame writes the same bytes again.
    assert codec.encode(parse_frame(decoded).to_wire()) == expected_bytes(case, codec_name)


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("case", batch_cases(), ids=lambda c: c["name"])
def test_batch_vectors(codec_name: str, case: dict[str, Any]) -> None:
    codec = make_codec(codec_name)
    frames = generate.from_jsonable(case["frame"])
    want = expected_bytes(case, codec_name)
    assert codec.batch(codec.encode(parse_frame(f).to_wire()) for f in frames) == want
    decoded = codec.decode(want)
    assert isinstance(decoded, list) and len(decoded) == len(frames)
    assert all(same(d, f) for d, f in zip(decoded, frames, strict=True))


def test_json_decodes_text_and_bytes_alike() -> None:
    codec = JsonCodec()
    text = BY_NAME["event_unicode_non_bmp"]["json"]
    assert codec.decode(text) == codec.decode(text.encode("utf-8"))


# -- batches -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "json_text", "msgpack_head"),
    [(0, "[]", "90"), (1, None, "91"), (15, None, "9f"), (16, None, "dc0010"), (70000, None, "dd")],
)
def test_batch_headers(count: int, json_text: str | None, msgpack_head: str) -> None:
    js, mp = make_codec("json"), make_codec("msgpack")
    frame = {"t": "ping"}
    jb = js.batch([js.encode(frame)] * count)
    mb = mp.batch(mp.encode(frame) for _ in range(count))
    if json_text is not None:
        assert jb == json_text.encode()
    assert js.decode(jb) == [frame] * count
    assert mb.hex().startswith(msgpack_head)
    assert mb == msgpack.packb([frame] * count)
    assert mp.decode(mb) == [frame] * count


# -- the broadcast splice: frame(type, seq, body) == encode(to_wire(seq)) -------------------

SPLICE_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("empty", "event", {}),
    ("event", "event", {"e": "chat", "d": {"text": "hi"}}),
    ("event_id", "event", {"id": 3, "e": "call", "d": [1, 2, 3]}),
    ("event_room_pos", "event", {"e": "m", "d": None, "r": "lobby", "o": ["room:/:l", "ep", 9]}),
    ("event_tuple_pos", "event", {"e": "m", "d": None, "r": "lobby", "o": ("room:/:l", "ep", 9)}),
    ("event_bytes", "event", {"e": "blob", "d": b"\x00\xff" * 40}),
    ("event_unicode", "event", {"e": "é", "d": "😀 𝄞 日本"}),
    ("ack_ok", "ack", {"id": 1, "ok": True, "d": {"room": "x"}}),
    ("ack_err", "ack", {"id": 2, "ok": False, "err": {"code": "no", "message": "nope"}}),
    ("13_fields", "event", {f"f{i}": i for i in range(13)}),  # 15 entries: fixmap
    ("14_fields", "event", {f"f{i}": i for i in range(14)}),  # 16 entries: map16
    ("40_fields", "event", {f"f{i}": "v" * i for i in range(40)}),
]


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("seq", [1, 15, 127, 128, 255, 65536, 2**32, 2**53 - 1])
@pytest.mark.parametrize(("label", "type_", "fields"), SPLICE_FIELDS, ids=lambda v: v)
def test_splice_matches_full_encoding(
    codec_name: str, seq: int, label: str, type_: str, fields: dict[str, Any]
) -> None:
    codec = make_codec(codec_name)
    out = Outgoing(type_, fields)
    spliced = codec.frame(out.type, seq, out.body(codec))
    assert spliced == codec.encode(out.to_wire(seq))
    decoded = codec.decode(spliced)
    assert list(decoded) == ["t", "s", *fields]
    assert decoded["s"] == seq and decoded["t"] == type_


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize(("label", "type_", "fields"), SPLICE_FIELDS, ids=lambda v: v)
def test_splicer_and_outgoing_frame_match_frame(
    codec_name: str, label: str, type_: str, fields: dict[str, Any]
) -> None:
    """The per-recipient splice (made once per broadcast) gives codec.frame()'s bytes for
    every sequence number, for the first codec and any other, however often asked."""
    codec, other = make_codec(codec_name), make_codec("json" if codec_name != "json" else "msgpack")
    out = Outgoing(type_, fields)
    body = out.body(codec)
    splice = codec.splicer(type_, body)
    for _ in range(3):  # the first frame, the second (the splice is made), the rest
        for seq in [1, 15, 127, 128, 255, 65536, 2**32, 2**53 - 1]:
            assert splice(seq) == codec.frame(type_, seq, body)
            assert out.frame(codec, seq) == codec.frame(type_, seq, body)
            assert out.frame(other, seq) == other.frame(type_, seq, out.body(other))


@pytest.mark.parametrize("codec_name", CODECS)
def test_splice_keeps_percent_signs_and_empty_bodies(codec_name: str) -> None:
    """JSON's splice is a %-template: a body's own % must come out as written."""
    codec = make_codec(codec_name)
    for fields in ({"e": "%d%s%%", "d": "100% %(x)s %"}, {}):
        body = codec.encode_body(fields)
        splice = codec.splicer("event", body)
        for seq in (1, 2**63):
            assert splice(seq) == codec.frame("event", seq, body)
            assert codec.decode(splice(seq)) == {"t": "event", "s": seq, **fields}


def test_splice_map_header_sizes() -> None:
    mp = make_codec("msgpack")
    small = Outgoing("event", {f"f{i}": i for i in range(13)})
    large = Outgoing("event", {f"f{i}": i for i in range(14)})
    assert mp.frame("event", 1, small.body(mp))[:1] == b"\x8f"  # fixmap, 15 entries
    assert mp.frame("event", 1, large.body(mp))[:3] == b"\xde\x00\x10"  # map16, 16 entries


SERVER_SEQUENCED = [c for c in single_cases() if c["frame"]["t"] in ("event", "ack")]


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("case", SERVER_SEQUENCED, ids=lambda c: c["name"])
def test_splice_reproduces_sequenced_vectors(codec_name: str, case: dict[str, Any]) -> None:
    """Server frames built through Outgoing are byte-identical to the golden vectors."""
    frame = generate.from_jsonable(case["frame"])
    codec = make_codec(codec_name)
    fields = {k: v for k, v in frame.items() if k not in ("t", "s")}
    out = Outgoing(frame["t"], fields)
    assert codec.frame(out.type, frame["s"], out.body(codec)) == expected_bytes(case, codec_name)


# -- encode once per codec -------------------------------------------------------------------


class RecordingCodec:
    """Wraps a real codec and counts how often bodies and frames are encoded."""

    def __init__(self, inner: Codec) -> None:
        self.inner = inner
        self.name = inner.name
        self.binary = inner.binary
        self.content_type = inner.content_type
        self.body_calls = 0
        self.encode_calls = 0

    def encode(self, obj: dict[str, Any]) -> bytes:
        self.encode_calls += 1
        return self.inner.encode(obj)

    def decode(self, data: bytes | str) -> Any:
        return self.inner.decode(data)

    def encode_body(self, fields: dict[str, Any]) -> bytes:
        self.body_calls += 1
        return self.inner.encode_body(fields)

    def frame(self, type: str, seq: int, body: bytes) -> bytes:
        return self.inner.frame(type, seq, body)

    def splicer(self, type: str, body: bytes) -> Callable[[int], bytes]:
        return self.inner.splicer(type, body)

    def batch(self, frames: Iterable[bytes]) -> bytes:
        return self.inner.batch(frames)

    def rx(self, n: int) -> bytes:
        return self.inner.rx(n)

    def reply(self, receipt: int | None, seq: int, body: bytes) -> bytes:
        return self.inner.reply(receipt, seq, body)


def test_body_is_encoded_once_per_codec() -> None:
    js, mp = RecordingCodec(make_codec("json")), RecordingCodec(make_codec("msgpack"))
    out = Outgoing("event", {"e": "news", "d": {"big": "x" * 1000}})
    first = out.body(js)
    for _ in range(5):
        assert out.body(js) is first
        out.body(mp)
    assert (js.body_calls, mp.body_calls) == (1, 1)


def test_room_broadcast_encodes_once_per_codec() -> None:
    """One Outgoing pushed to many sessions on different codecs: each session gets its own
    sequence number, the body is encoded once per codec, never per session."""
    codecs = [RecordingCodec(make_codec("json")), RecordingCodec(make_codec("msgpack"))]
    settings = Settings()
    sessions = []
    for i in range(40):
        sess = ServerSession(f"s{i}", None, "/", settings, now=0.0)
        sess.attach(object(), 0.0, Heartbeat(None, 30.0), None)
        for _ in range(i % 3):  # different sequence positions per session
            sess.push(Outgoing("event", {"e": "warmup", "d": None}))
        sess.take_pending()
        sessions.append(sess)
    out = Outgoing("event", {"e": "news", "d": "hello", "r": "lobby"})
    wire = []
    for i, sess in enumerate(sessions):
        codec = codecs[i % 2]
        seq = sess.push(out)
        [(taken_seq, taken)] = sess.take_pending()
        assert (taken_seq, taken) == (seq, out)
        wire.append((codec, seq, codec.frame(taken.type, taken_seq, taken.body(codec))))
    assert [c.body_calls for c in codecs] == [1, 1]
    assert all(c.encode_calls == 0 for c in codecs)
    for codec, seq, data in wire:
        assert data == codec.inner.encode(out.to_wire(seq))
        assert codec.decode(data)["s"] == seq


# -- bytes, unsupported values and decoding limits -----------------------------------------


def test_json_bytes_like_values_become_bin_objects() -> None:
    js = JsonCodec()
    for value in (b"\x00\xff", bytearray(b"\x00\xff"), memoryview(b"\x00\xff")):
        assert js.encode({"d": value}) == b'{"d":{"$bin":"AP8="}}'
    assert js.decode(b'{"d":{"$bin":"AP8="}}') == {"d": b"\x00\xff"}


def test_json_escapes_are_read() -> None:
    js = JsonCodec()
    assert js.decode(r'{"d":"\ud83d\ude00 \u00e9 \u0041"}') == {"d": "😀 é A"}
    assert js.decode(r'{"d":"\\ud800"}') == {"d": "\\ud800"}  # an escaped backslash


def test_json_bin_lookalikes_stay_maps() -> None:
    js = JsonCodec()
    assert js.decode('{"$bin":5}') == {"$bin": 5}
    assert js.decode('{"$bin":"AP8=","x":1}') == {"$bin": "AP8=", "x": 1}


def test_msgpack_bytes_like_values_are_bin() -> None:
    mp = make_codec("msgpack")
    for value in (b"\x00\xff", bytearray(b"\x00\xff"), memoryview(b"\x00\xff")):
        assert mp.encode({"d": value}) == bytes.fromhex("81a164c40200ff")


@pytest.mark.parametrize("codec_name", CODECS)
def test_sets_and_tuples_encode_as_arrays(codec_name: str) -> None:
    codec = make_codec(codec_name)
    assert codec.decode(codec.encode({"d": (1, 2)})) == {"d": [1, 2]}
    assert codec.decode(codec.encode({"d": frozenset({7})})) == {"d": [7]}


@pytest.mark.parametrize(
    ("codec_name", "value"),
    [
        ("json", object()),
        ("json", {1, 2j}),
        ("msgpack", object()),
        ("msgpack", {1, 2j}),
        ("msgpack", 2**64),  # beyond uint64 (JSON has arbitrary-precision integers)
        ("msgpack", -(2**63) - 1),
    ],
)
def test_unencodable_values_raise_type_error(codec_name: str, value: Any) -> None:
    with pytest.raises(TypeError):
        make_codec(codec_name).encode({"d": value})


def test_json_refuses_to_write_nan() -> None:
    with pytest.raises(TypeError):
        JsonCodec().encode({"d": float("nan")})


def test_json_deep_nesting_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        JsonCodec().decode("[" * 100_000 + "]" * 100_000)
    assert info.value.code == CloseCode.BAD_REQUEST


def test_msgpack_refuses_text_input() -> None:
    with pytest.raises(RemoteProtocolError):
        make_codec("msgpack").decode('{"t":"ping"}')


def test_msgpack_size_limit() -> None:
    mp = MsgpackCodec(msgpack.packb, msgpack.unpackb, max_size=32)
    ok = mp.encode({"t": "event", "s": 1, "e": "a", "d": "x"})
    assert mp.decode(ok)["d"] == "x"
    with pytest.raises(RemoteProtocolError) as info:
        mp.decode(mp.encode({"t": "event", "s": 1, "e": "a", "d": "x" * 64}))
    assert info.value.code == CloseCode.MESSAGE_TOO_BIG


def test_codec_metadata() -> None:
    js, mp = JsonCodec(), make_codec("msgpack")
    assert (js.name, js.binary, js.content_type) == ("json", False, "application/json")
    assert (mp.name, mp.binary, mp.content_type) == ("msgpack", True, "application/msgpack")


@pytest.mark.parametrize("name", CODECS)
def test_circular_data_is_refused_in_the_caller(name: str) -> None:
    codec = make_codec(name)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(TypeError):
        codec.encode_body({"d": loop})


def test_json_fast_encoder_matches_the_standard_encoder() -> None:
    # The prebuilt C encoder must write exactly what JSONEncoder writes.
    codec = JsonCodec()
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    value = {"t": "event", "s": 1, "d": {"é": "\n\u2028\x01", "n": [1.5, -2, None, True]}}
    assert codec.encode(value) == reference.encode(value).encode()


# -- the injected fast JSON decoder only ever agrees with the reference path ---------------

_TRICKY_JSON = [
    '{"t":"event","s":1,"id":1,"e":"echo","d":{"ts":1,"p":"xx"}}',
    '[{"t":"rx","n":3},{"t":"event","s":4,"e":"a","d":[1,2.5,-0.0,1E5,null,true]}]',
    '{"d":"\u00e9"}',  # an escape: the reference path reads it
    '{"d":"\ud800"}',  # a lone surrogate: refused
    '{"\u0024bin":"AP8="}',  # an escaped $bin key is still $bin
    '{"d":{"$bin":"AP8="}}',
    '{"d":{"$bin":"!!"}}',
    '{"d":"é😀"}',
    '{"a":1,"a":2}',
    " [1] ",
    "NaN",
    "[Infinity]",
    "1e400",
    "-1e400",
    "1" + "0" * 400 + ".0",
    "9" * 5000,
    "123456789012345678901234567890",
    "1 2",
    "\ufeff1",
    "[1,2",
    "[" * 100_000 + "]" * 100_000,
    "",
    "{}",
    '"\u0000"',
]


def _outcome(codec: Codec, data: bytes | str) -> Any:
    try:
        return ("ok", codec.decode(data))
    except RemoteProtocolError as exc:
        return ("error", exc.code, exc.message)


@pytest.mark.parametrize("text", _TRICKY_JSON, ids=range(len(_TRICKY_JSON)))
def test_fast_json_decoder_agrees_with_the_reference(text: str) -> None:
    """Same value or same error (code and message), for text and for UTF-8 bytes."""
    fast, reference = make_codec("json"), make_codec("json-reference")
    for data in (text, text.encode("utf-8", "surrogatepass")):
        assert _outcome(fast, data) == _outcome(reference, data)


def test_fast_json_decoder_agrees_on_every_vector() -> None:
    fast, reference = make_codec("json"), make_codec("json-reference")
    cases = [c for c in load_vectors("invalid.json") if c["codec"] == "json"]
    cases += [c for c in FRAMES]
    for case in cases:
        data = case["input"] if "input" in case else expected_bytes(case, "json")
        assert _outcome(fast, data) == _outcome(reference, data), case["name"]


def test_fast_json_decoder_refuses_invalid_utf8() -> None:
    data = b'{"d":"' + bytes([0xFF]) + b'"}'
    fast, reference = make_codec("json"), make_codec("json-reference")
    assert _outcome(fast, data)[0] == "error"
    assert _outcome(fast, data) == _outcome(reference, data)


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("n", [0, 1, 15, 127, 128, 255, 256, 65535, 65536, 2**32, 2**53 - 1])
def test_rx_is_byte_for_byte_the_encoded_frame(codec_name: str, n: int) -> None:
    codec = make_codec(codec_name)
    assert codec.rx(n) == codec.encode({"t": "rx", "n": n})


@pytest.mark.parametrize("codec_name", CODECS)
@pytest.mark.parametrize("receipt", [None, 0, 1, 127, 65536, 2**53 - 1])
@pytest.mark.parametrize("seq", [1, 200, 2**40])
@pytest.mark.parametrize("fields", [{}, {"id": 7, "ok": True, "d": {"x": [1, "é"]}}])
def test_reply_is_byte_for_byte_the_receipt_and_ack_in_a_batch(
    codec_name: str, receipt: int | None, seq: int, fields: dict[str, Any]
) -> None:
    codec = make_codec(codec_name)
    ack = codec.frame("ack", seq, codec.encode_body(fields))
    expected = ack if receipt is None else codec.batch([codec.rx(receipt), ack])
    assert codec.reply(receipt, seq, codec.encode_body(fields)) == expected
    if receipt is not None:
        assert codec.decode(expected) == [
            {"t": "rx", "n": receipt},
            {"t": "ack", "s": seq, **fields},
        ]


_EVENT = '{"t":"event","s":%s,"e":%s%s}'
_EVENTS = [
    # (message, whether the typed event decoder should take it)
    ('{"t":"event","s":1,"e":"echo","id":1,"d":{"ts":1,"p":"x"}}', True),
    ('{"t":"event","s":1,"e":"echo"}', True),
    ('{"t":"event","s":1,"e":"echo","id":null,"d":null}', True),
    ('{"t":"event","s":0,"e":"e","d":[1,2.5,true,null,"é😀",{"k":[]}]}', True),
    (_EVENT % (2**53 - 1, '"x"', f',"id":{2**53 - 1}'), True),
    (_EVENT % (1, '"' + "n" * 200 + '"', ""), True),
    (_EVENT % (1, '"' + "é" * 200 + '"', ""), True),
    ('{"t":"event","s":1,"e":"x","d":123456789012345678901234567890}', None),
    ('{"t":"event","s":1,"s":2,"e":"x"}', None),  # duplicate keys: the last one counts
    ('{"t":"event","s":1,"e":"x","d":{"a":1,"a":2}}', None),
    (_EVENT % (2**53, '"x"', ""), False),
    (_EVENT % (-1, '"x"', ""), False),
    (_EVENT % ("true", '"x"', ""), False),
    (_EVENT % ("1.0", '"x"', ""), False),
    (_EVENT % (1, '""', ""), False),
    (_EVENT % (1, '"' + "n" * 201 + '"', ""), False),
    (_EVENT % (1, "5", ""), False),
    (_EVENT % (1, '"x"', ',"id":-1'), False),
    (_EVENT % (1, '"x"', ',"id":1.5'), False),
    (_EVENT % (1, '"x"', ',"r":"room"'), False),  # a room: the full parser checks it
    (_EVENT % (1, '"x"', ',"o":[1,2,3]'), False),
    (_EVENT % (1, '"x"', ',"extra":1'), False),  # unknown keys: the full parser ignores them
    (_EVENT % (1, '"x"', ',"t":"ack"'), False),  # a second tag: the last one counts
    (_EVENT % (1, '"x"', ',"d":1e400'), False),
    (_EVENT % (1, '"x"', ',"d":{"$bin":"AP8="}'), False),
    (_EVENT % (1, '"x"', ',"d":"\\u00e9"'), False),
    (_EVENT % (1, '"x"', ',"d":"\\ud800"'), False),
    (_EVENT % (1, '"x"', ',"d":' + "[" * 1000 + "]" * 1000), False),
    ('{"t":"event","s":1,"e":"x"} ', None),
    ('{"t":"event","s":1,"e":"x"}x', False),
    ('{"t":"event","s":1,"e":"x"', False),
    ('{"t":"event", "s":1,"e":"x"}', None),
    ('{"t":"ack","s":1,"id":1,"ok":true}', False),
    ('[{"t":"event","s":1,"e":"x"}]', False),  # a batch
]


@pytest.mark.parametrize(("text", "taken"), _EVENTS, ids=range(len(_EVENTS)))
def test_typed_event_decoder_never_disagrees_with_the_parser(text: str, taken: bool | None) -> None:
    """decode_event() either declines or returns exactly the frame the reference decoder
    and parse_frame() make of the message (text and UTF-8 bytes). ``taken`` says whether
    it should take it (None: either is right), so the fast path is known to be used."""
    codec, reference = make_codec("json"), make_codec("json-reference")
    for data in (text, text.encode("utf-8", "surrogatepass")):
        event = codec.decode_event(data)
        try:
            expected = parse_frame(reference.decode(data))
        except RemoteProtocolError:
            expected = None
        if event is not None:
            assert event == expected
        if taken is not None:
            assert (event is not None) is taken


def test_only_the_server_json_codec_has_a_typed_event_decoder() -> None:
    text = '{"t":"event","s":1,"e":"x"}'
    assert make_codec("json").decode_event(text) is not None
    assert make_codec("json-reference").decode_event(text) is None
    assert make_codec("msgpack").decode_event(msgpack.packb(json.loads(text))) is None
