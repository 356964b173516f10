"""Generate the golden wire vectors: ``python tests/vectors/generate.py``.

``frames.json`` lists valid frames (or batches) with their exact canonical encodings;
``invalid.json`` lists inputs that decoding or :func:`parse_frame` must reject. Both are
read by ``tests/unit`` and are meant for every other client implementation too.

Vector format (``frames.json``), a list of::

    {"name": str,
     "frame": <frame map, or a list of them for a batch; bytes inside "d" are
               {"$bin": base64}>,
     "json": <exact text the JSON codec writes>,
     "msgpack": <lowercase hex of the exact bytes the MessagePack codec writes>}

``invalid.json``, a list of::

    {"name": str, "codec": "json" | "msgpack",
     "input": <JSON text for json, lowercase hex for msgpack>,
     "stage": "decode" (codec.decode rejects it) | "parse" (parse_frame rejects it),
     "error": "RemoteProtocolError", "code": <close code carried by the error>}

The output is deterministic: running this twice gives identical files, and the unit
tests check that the committed files match what this script produces.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from anywire.core.closecodes import CloseCode  # noqa: E402
from anywire.core.codec import JsonCodec, MsgpackCodec  # noqa: E402
from anywire.core.frames import parse_frame  # noqa: E402


def _bin(data: bytes) -> dict[str, str]:
    return {"$bin": base64.b64encode(data).decode("ascii")}


def from_jsonable(value: Any) -> Any:
    """Turn the vector form of a frame into the in-memory form ({"$bin"} -> bytes)."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$bin"), str):
            return base64.b64decode(value["$bin"], validate=True)
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def _event(s: int, e: str, d: Any, **extra: Any) -> dict[str, Any]:
    # Canonical key order: t, s, id, e, d, r, o.
    out: dict[str, Any] = {"t": "event", "s": s}
    if "id" in extra:
        out["id"] = extra["id"]
    out["e"] = e
    out["d"] = d
    for key in ("r", "o"):
        if key in extra:
            out[key] = extra[key]
    return out


# Every frame in its canonical form, exactly as ``to_wire`` writes it.
FRAMES: list[tuple[str, Any]] = [
    ("connect", {"t": "connect", "ticket": "tk.abc"}),
    ("resume", {"t": "resume", "ticket": "tk.abc", "last": 42}),
    ("hello_fresh", {"t": "hello", "sid": "s1", "recovered": False, "seq": 0, "last": 0}),
    ("hello_recovered", {"t": "hello", "sid": "s1", "recovered": True, "seq": 17, "last": 3}),
    (
        "hello_direct_resume_with_expires_in",
        {"t": "hello", "sid": "s1", "recovered": True, "seq": 17, "last": 3, "expires_in": 59000},
    ),
    (
        "hello_fresh_with_streams",
        {"t": "hello", "sid": "s1", "recovered": False, "seq": 0, "last": 0,
         "streams": [["user:/:ann", "9f2c01ab", 17], ["sess:/:s1", "77aa0b3c", 0],
                     ["all:/", "0c1d2e3f", 4]]},
    ),
    ("event_minimal", _event(1, "a", None)),
    ("event_with_id", _event(2, "chat", {"text": "hi"}, id=7)),
    ("event_with_room", _event(3, "chat", "hello", r="lobby")),
    (
        "event_with_room_and_offset",
        _event(4, "chat", [1, 2], r="lobby", o=["room:/:lobby", "ep1", 12]),
    ),
    ("event_all_fields", _event(5, "x", True, id=1, r="r", o=["user:/:u1", "e", 0])),
    ("event_binary", _event(6, "blob", _bin(b"\x00\x01\x02\xfe\xff"))),
    ("event_binary_empty", _event(7, "blob", _bin(b""))),
    (
        "event_binary_nested",
        _event(8, "file", {"name": "a.bin", "chunks": [_bin(b"abc"), _bin(bytes(range(16)))]}),
    ),
    (
        "event_nested",
        _event(
            9,
            "deep",
            {"a": {"b": {"c": [1, [2, [3, {"d": None}]]]}}, "list": [], "map": {}, "z": "end"},
        ),
    ),
    ("event_unicode", _event(10, "msg", "héllo wörld ✓ 日本語")),
    ("event_unicode_non_bmp", _event(11, "emoji", "smile 😀 and 𝄞")),
    ("event_unicode_name_and_room", _event(12, "évènement", {"clé": "ü"}, r="salle-€")),
    ("event_escapes", _event(13, "esc", 'quote " backslash \\ newline \n tab \t nul \u0000')),
    ("event_int_0", _event(14, "n", 0)),
    ("event_int_127", _event(15, "n", 127)),
    ("event_int_128", _event(16, "n", 128)),
    ("event_int_255_256", _event(17, "n", [255, 256])),
    ("event_int_65535_65536", _event(18, "n", [65535, 65536])),
    ("event_int_2_32", _event(19, "n", [2**32 - 1, 2**32])),
    ("event_int_2_53_minus_1", _event(20, "n", 2**53 - 1)),
    ("event_int_negative", _event(21, "n", [-1, -32, -33, -128, -129, -32768, -32769])),
    ("event_int_negative_large", _event(22, "n", [-(2**31), -(2**31) - 1, -(2**53) + 1])),
    ("event_float", _event(23, "f", 1.5)),
    ("event_float_negative_small", _event(24, "f", [-0.25, 1e-7, 123456.789])),
    ("event_null", _event(25, "z", None)),
    ("event_bool", _event(26, "b", [True, False])),
    ("event_large_seq", _event(2**53 - 1, "last", None)),
    ("event_seq_boundaries", _event(128, "x", None, id=65536)),
    ("event_long_string", _event(27, "long", "x" * 40)),
    ("event_string_256", _event(28, "long", "y" * 256)),
    ("event_map_16_keys", _event(29, "wide", {f"k{i:02d}": i for i in range(16)})),
    ("event_array_16_items", _event(30, "wide", list(range(16)))),
    ("ack_ok", {"t": "ack", "s": 1, "id": 7, "ok": True, "d": {"room": "lobby"}}),
    ("ack_ok_null", {"t": "ack", "s": 2, "id": 8, "ok": True, "d": None}),
    (
        "ack_error",
        {
            "t": "ack",
            "s": 3,
            "id": 9,
            "ok": False,
            "err": {"code": "forbidden", "message": "not allowed"},
        },
    ),
    ("join", {"t": "join", "s": 4, "id": 10, "r": "lobby"}),
    ("join_with_meta", {"t": "join", "s": 5, "id": 11, "r": "lobby", "meta": {"nick": "Zoë"}}),
    ("join_since", {"t": "join", "s": 6, "id": 12, "r": "lobby", "since": ["9f3a", 41]}),
    ("leave", {"t": "leave", "s": 6, "id": 12, "r": "lobby"}),
    ("auth", {"t": "auth", "id": 13, "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2ln"}),
    ("ping", {"t": "ping"}),
    ("pong", {"t": "pong"}),
    ("rx", {"t": "rx", "n": 16}),
    ("rx_zero", {"t": "rx", "n": 0}),
    ("error", {"t": "error", "c": 4502, "m": "bad frame"}),
    ("close", {"t": "close", "c": 4000, "m": "server restarting"}),
    ("close_empty_reason", {"t": "close", "c": 4500, "m": ""}),
    (
        "batch_mixed",
        [
            {"t": "rx", "n": 3},
            _event(4, "a", 1),
            {"t": "ack", "s": 5, "id": 1, "ok": True, "d": None},
            {"t": "ping"},
        ],
    ),
    ("batch_single", [{"t": "pong"}]),
    ("batch_16_frames", [_event(i, "e", i) for i in range(1, 17)]),
]


def _case(name: str, frame: Any, js: JsonCodec, mp: MsgpackCodec) -> dict[str, Any]:
    value = from_jsonable(frame)
    if isinstance(value, list):
        j = js.batch(js.encode(parse_frame(f).to_wire()) for f in value)
        m = mp.batch(mp.encode(parse_frame(f).to_wire()) for f in value)
    else:
        j = js.encode(parse_frame(value).to_wire())
        m = mp.encode(parse_frame(value).to_wire())
    return {"name": name, "frame": frame, "json": j.decode("utf-8"), "msgpack": m.hex()}


def build_frames() -> list[dict[str, Any]]:
    js, mp = JsonCodec(), MsgpackCodec(msgpack.packb, msgpack.unpackb)
    names = [name for name, _ in FRAMES]
    assert len(names) == len(set(names)), "vector names must be unique"
    return [_case(name, frame, js, mp) for name, frame in FRAMES]


_BAD = int(CloseCode.BAD_REQUEST)


def _pack(obj: Any) -> str:
    return bytes(msgpack.packb(obj, use_bin_type=True)).hex()


def _invalid(
    name: str, codec: str, data: Any, stage: str, code: int = _BAD, raw: bool = False
) -> dict[str, Any]:
    """``data`` is a value to encode, or with ``raw`` the exact input: JSON text for the
    json codec, bytes for msgpack."""
    if codec == "json":
        text = data if raw else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    else:
        text = data.hex() if raw else _pack(data)
    return {
        "name": name,
        "codec": codec,
        "input": text,
        "stage": stage,
        "error": "RemoteProtocolError",
        "code": code,
    }


_GOOD_EVENT = {"t": "event", "s": 1, "e": "a", "d": None}

# (name, frame map) pairs that decode fine but are not valid frames: each is checked with
# both codecs.
_BAD_FRAMES: list[tuple[str, Any]] = [
    ("not_a_map_int", 42),
    ("not_a_map_string", "event"),
    ("not_a_map_null", None),
    ("not_a_map_nested_batch", [[{"t": "ping"}]]),
    ("missing_t", {"s": 1, "e": "a"}),
    ("unknown_t", {"t": "shout", "s": 1}),
    ("t_not_string", {"t": 1}),
    ("t_wrong_case", {"t": "Ping"}),
    ("event_s_string", {**_GOOD_EVENT, "s": "1"}),
    ("event_s_negative", {**_GOOD_EVENT, "s": -1}),
    ("event_s_bool", {**_GOOD_EVENT, "s": True}),
    ("event_s_float", {**_GOOD_EVENT, "s": 1.0}),
    ("event_s_2_53", {**_GOOD_EVENT, "s": 2**53}),
    ("event_s_missing", {"t": "event", "e": "a"}),
    ("event_e_int", {**_GOOD_EVENT, "e": 123}),
    ("event_e_empty", {**_GOOD_EVENT, "e": ""}),
    ("event_e_too_long", {**_GOOD_EVENT, "e": "x" * 201}),
    ("event_e_missing", {"t": "event", "s": 1}),
    ("event_id_string", {**_GOOD_EVENT, "id": "7"}),
    ("event_id_negative", {**_GOOD_EVENT, "id": -1}),
    ("event_id_bool", {**_GOOD_EVENT, "id": True}),
    ("event_r_int", {**_GOOD_EVENT, "r": 5}),
    ("event_o_short", {**_GOOD_EVENT, "o": ["room:/:a", "ep"]}),
    ("event_o_offset_string", {**_GOOD_EVENT, "o": ["room:/:a", "ep", "3"]}),
    ("event_o_offset_bool", {**_GOOD_EVENT, "o": ["room:/:a", "ep", True]}),
    ("event_o_map", {**_GOOD_EVENT, "o": {"stream": "room:/:a"}}),
    ("ack_ok_string", {"t": "ack", "s": 1, "id": 1, "ok": "yes"}),
    ("ack_ok_int", {"t": "ack", "s": 1, "id": 1, "ok": 1}),
    ("ack_ok_missing", {"t": "ack", "s": 1, "id": 1, "d": None}),
    ("ack_id_missing", {"t": "ack", "s": 1, "ok": True}),
    ("ack_error_without_err", {"t": "ack", "s": 1, "id": 1, "ok": False}),
    ("ack_err_code_int", {"t": "ack", "s": 1, "id": 1, "ok": False, "err": {"code": 5}}),
    ("ack_err_string", {"t": "ack", "s": 1, "id": 1, "ok": False, "err": "boom"}),
    ("join_r_missing", {"t": "join", "s": 1, "id": 1}),
    ("join_r_empty", {"t": "join", "s": 1, "id": 1, "r": ""}),
    ("join_id_string", {"t": "join", "s": 1, "id": "1", "r": "a"}),
    ("join_since_not_pair", {"t": "join", "s": 1, "id": 1, "r": "a", "since": ["e"]}),
    ("join_since_negative", {"t": "join", "s": 1, "id": 1, "r": "a", "since": ["e", -1]}),
    ("join_since_epoch_int", {"t": "join", "s": 1, "id": 1, "r": "a", "since": [1, 2]}),
    ("leave_r_list", {"t": "leave", "s": 1, "id": 1, "r": ["a"]}),
    ("auth_token_missing", {"t": "auth", "id": 1}),
    ("auth_token_empty", {"t": "auth", "id": 1, "token": ""}),
    ("auth_token_int", {"t": "auth", "id": 1, "token": 7}),
    ("auth_id_missing", {"t": "auth", "token": "x"}),
    ("rx_n_negative", {"t": "rx", "n": -5}),
    ("rx_n_missing", {"t": "rx"}),
    ("rx_n_float", {"t": "rx", "n": 2.5}),
    ("connect_ticket_int", {"t": "connect", "ticket": 1}),
    ("connect_ticket_missing", {"t": "connect"}),
    ("resume_last_missing", {"t": "resume", "ticket": "x"}),
    ("resume_last_string", {"t": "resume", "ticket": "x", "last": "3"}),
    (
        "hello_recovered_string",
        {"t": "hello", "sid": "s", "recovered": "true", "seq": 0, "last": 0},
    ),
    ("hello_sid_missing", {"t": "hello", "recovered": False, "seq": 0, "last": 0}),
    (
        "hello_expires_in_negative",
        {"t": "hello", "sid": "s", "recovered": True, "seq": 0, "last": 0, "expires_in": -1},
    ),
    (
        "hello_streams_not_a_list",
        {"t": "hello", "sid": "s", "recovered": False, "seq": 0, "last": 0, "streams": {}},
    ),
    (
        "hello_stream_offset_negative",
        {"t": "hello", "sid": "s", "recovered": False, "seq": 0, "last": 0,
         "streams": [["all:/", "e", -1]]},
    ),
    ("close_c_string", {"t": "close", "c": "4000"}),
    ("close_m_int", {"t": "close", "c": 4000, "m": 1}),
    ("error_c_missing", {"t": "error", "m": "x"}),
]


def build_invalid() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for name, frame in _BAD_FRAMES:
        cases.append(_invalid(f"{name}_json", "json", frame, "parse"))
        cases.append(_invalid(f"{name}_msgpack", "msgpack", frame, "parse"))
    ev = '{"t":"event","s":1,"e":"a","d":'
    bad_json = [
        # Not JSON, or JSON the encoder could never write back (allow_nan=False).
        ("json_empty", ""),
        ("json_truncated", '{"t":"event","s":1,'),
        ("json_trailing_garbage", '{"t":"ping"} x'),
        ("json_single_quotes", "{'t':'ping'}"),
        ("json_nan", ev + "NaN}"),
        ("json_infinity", ev + "-Infinity}"),
        ("json_float_overflow", ev + "1e400}"),
        ("json_bin_bad_base64", ev + '{"$bin":"!!"}}'),
        ("json_bin_bad_padding", ev + '{"$bin":"AAA"}}'),
        # Escapes that spell a lone surrogate: not Unicode, no UTF-8 encoder can write it.
        ("json_lone_high_surrogate", ev + '"\\ud800"}'),
        ("json_lone_low_surrogate", ev + '"x\\uDC00"}'),
        ("json_reversed_surrogate_pair", ev + '"\\ude00\\ud83d"}'),
        ("json_lone_surrogate_in_key", ev + '{"\\ud83d":1}}'),
    ]
    valid = bytes(msgpack.packb(_GOOD_EVENT))  # 84 ... a1 64 c0: "d" is the last entry
    bad_msgpack = [
        ("msgpack_empty", b""),
        ("msgpack_reserved_byte", b"\xc1"),
        ("msgpack_random_bytes", bytes.fromhex("c1ffc7c1c1")),
        ("msgpack_truncated", valid[:-1]),
        ("msgpack_truncated_header", valid[:1]),
        ("msgpack_trailing_data", valid + b"\x00"),
        ("msgpack_bad_utf8", b"\x81\xa1t\xa2\xff\xfe"),
        ("msgpack_int_map_key", b"\x81\x01\xa4ping"),
        ("msgpack_int_key_nested", valid[:-1] + b"\x81\x01\x02"),  # d = {1: 2}
        # Extension types cannot be relayed to JSON clients.
        ("msgpack_ext_type", valid[:-1] + b"\xd5\x05ab"),  # d = fixext2, type 5
        ("msgpack_ext8_type", valid[:-1] + b"\xc7\x03\x7fabc"),  # d = ext8, type 127
    ]
    cases += [_invalid(name, "json", text, "decode", raw=True) for name, text in bad_json]
    cases += [_invalid(name, "msgpack", data, "decode", raw=True) for name, data in bad_msgpack]
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "vector names must be unique"
    return cases


def render(cases: list[dict[str, Any]]) -> str:
    return json.dumps(cases, ensure_ascii=False, indent=1) + "\n"


def main() -> None:
    (HERE / "frames.json").write_text(render(build_frames()), encoding="utf-8")
    (HERE / "invalid.json").write_text(render(build_invalid()), encoding="utf-8")


if __name__ == "__main__":
    main()
