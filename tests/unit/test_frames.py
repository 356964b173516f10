"""Frame validation: every invalid vector is refused, valid frames round-trip."""

from __future__ import annotations

from typing import Any

import pytest

from anywire.core import errors
from anywire.core.errors import ProtocolError, RemoteProtocolError
from anywire.core.frames import (
    SEQUENCED,
    Ack,
    Close,
    Connect,
    ErrorFrame,
    Event,
    Frame,
    Hello,
    Join,
    Leave,
    Ping,
    Pong,
    Resume,
    ResumeDirect,
    Rx,
    in_order,
    parse_frame,
)
from tests.unit.conftest import load_vectors, make_codec

INVALID = load_vectors("invalid.json")


def _run(case: dict[str, Any]) -> tuple[str, ProtocolError]:
    """Decode then parse the input; returns the stage that refused it and the error."""
    codec = make_codec(case["codec"])
    data = case["input"] if case["codec"] == "json" else bytes.fromhex(case["input"])
    try:
        obj = codec.decode(data)
    except ProtocolError as exc:
        return "decode", exc
    try:
        for item in obj if isinstance(obj, list) else [obj]:
            parse_frame(item)
    except ProtocolError as exc:
        return "parse", exc
    raise AssertionError(f"{case['name']}: accepted {obj!r}")


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["name"])
def test_invalid_vector_is_rejected(case: dict[str, Any]) -> None:
    stage, exc = _run(case)
    assert stage == case["stage"]
    assert type(exc) is getattr(errors, case["error"])
    assert exc.code == case["code"]


def test_invalid_vectors_cover_both_codecs_and_stages() -> None:
    kinds = {(c["codec"], c["stage"]) for c in INVALID}
    assert kinds == {
        ("json", "decode"),
        ("json", "parse"),
        ("msgpack", "decode"),
        ("msgpack", "parse"),
    }


EXAMPLES: list[Frame] = [
    Connect("tk"),
    Resume("tk", 5),
    Hello("sid", True, 3, 2),
    Hello("sid", False, 0, 0),
    Event(1, "e"),
    Event(2, "e", {"x": [1, b"\x00"]}, id=4, r="room", o=("room:/:room", "ep", 7)),
    Ack(3, 1, True, {"ok": 1}),
    Ack(4, 2, False, err={"code": "denied", "message": "no"}),
    Join(5, 3, "room", {"nick": "a"}),
    Join(6, 4, "room"),
    Leave(7, 5, "room"),
    Ping(),
    Pong(),
    Rx(9),
    ErrorFrame(4502, "bad"),
    Close(4000, "bye"),
    Close(4500),
]


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: f.type)
def test_round_trip_through_wire_map(frame: Frame) -> None:
    wire = frame.to_wire()
    assert wire["t"] == frame.type
    assert parse_frame(wire) == frame
    assert ("s" in wire) == (frame.type in SEQUENCED)


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: f.type)
def test_round_trip_through_both_codecs(frame: Frame) -> None:
    for name in ("json", "msgpack"):
        codec = make_codec(name)
        assert parse_frame(codec.decode(codec.encode(frame.to_wire()))) == frame


def test_optional_fields_default() -> None:
    assert parse_frame({"t": "event", "s": 1, "e": "a"}) == Event(1, "a", None)
    assert parse_frame({"t": "close", "c": 4000}) == Close(4000, "")
    assert parse_frame({"t": "error", "c": 4502}) == ErrorFrame(4502, "")
    assert parse_frame({"t": "ack", "s": 1, "id": 2, "ok": True}) == Ack(1, 2, True, None)
    assert parse_frame({"t": "event", "s": 1, "e": "a", "id": None}).id is None  # type: ignore[union-attr]


def test_unknown_extra_keys_are_ignored() -> None:
    assert parse_frame({"t": "ping", "x": 1}) == Ping()
    assert parse_frame({"t": "rx", "n": 1, "extra": [1]}) == Rx(1)


def test_ack_fields_depend_on_ok() -> None:
    ok = parse_frame({"t": "ack", "s": 1, "id": 1, "ok": True, "d": 5, "err": "ignored"})
    assert ok == Ack(1, 1, True, 5, None)
    err = parse_frame({"t": "ack", "s": 1, "id": 1, "ok": False, "d": 5, "err": {"code": "x"}})
    assert err == Ack(1, 1, False, None, {"code": "x", "message": ""})
    # An error ack written without err still says what happened.
    assert Ack(1, 1, False).to_wire()["err"] == {"code": "error", "message": ""}


def test_event_wire_order_and_optional_keys() -> None:
    assert list(Event(1, "a").to_wire()) == ["t", "s", "e", "d"]
    full = Event(1, "a", 1, id=2, r="r", o=("s", "e", 3)).to_wire()
    assert list(full) == ["t", "s", "id", "e", "d", "r", "o"]
    assert full["o"] == ["s", "e", 3]
    assert list(Join(1, 1, "r").to_wire()) == ["t", "s", "id", "r"]


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [
        ("s", 2**53 - 1, 2**53),
        ("s", 0, -1),
        ("e", "x" * 200, "x" * 201),
        ("id", 2**53 - 1, 2**53),
        ("id", 0, -1),
    ],
)
def test_event_bounds(field: str, ok: Any, bad: Any) -> None:
    base: dict[str, Any] = {"t": "event", "s": 1, "e": "a", "d": None}
    parse_frame({**base, field: ok})
    with pytest.raises(RemoteProtocolError):
        parse_frame({**base, field: bad})


def test_event_ids_are_valid_ack_ids() -> None:
    """Whatever event id a peer may send, the ack that echoes it must parse too."""
    for ack_id in (0, 1, 2**53 - 1):
        event = parse_frame({"t": "event", "s": 1, "e": "a", "id": ack_id})
        assert isinstance(event, Event) and event.id is not None
        parse_frame(Ack(1, event.id, True).to_wire())


def test_room_name_bounds() -> None:
    parse_frame({"t": "join", "s": 1, "id": 1, "r": "r" * 200})
    with pytest.raises(RemoteProtocolError):
        parse_frame({"t": "join", "s": 1, "id": 1, "r": "r" * 201})


def test_errors_carry_bad_request_by_default() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_frame({"t": "nope"})
    assert info.value.code == 4502
    assert "nope" in info.value.message


def test_frames_are_values() -> None:
    """Equal fields, equal frames, same hash; frames of different types never equal.
    (Not frozen, for speed: see the comment in anywire/core/frames.py; nothing mutates a
    frame after building it.)"""
    assert Event(1, "a", id=2) == Event(1, "a", id=2)
    assert hash(Event(1, "a", id=2)) == hash(Event(1, "a", id=2))
    assert {Pong(), Rx(3), Rx(3)} == {Pong(), Rx(3)}
    assert Ping() != Pong()
    assert Event(1, "a") != Event(2, "a")
    assert not hasattr(Event(1, "a"), "__dict__")  # slotted: no stray attributes
    with pytest.raises(AttributeError):
        Event(1, "a").extra = 1  # type: ignore[attr-defined]


def test_in_order() -> None:
    assert in_order(3, Event(4, "a"), "client") is True
    assert in_order(3, Ack(3, 1, True), "client") is False
    assert in_order(3, Event(1, "a"), "client") is False
    with pytest.raises(RemoteProtocolError) as info:
        in_order(3, Join(5, 1, "r"), "server")
    assert info.value.message == "server sequence gap: expected 4, got 5"


@pytest.mark.parametrize(
    ("obj", "seq", "ack_id"),
    [
        ({"t": "event", "s": 5, "e": 123, "id": 7}, 5, 7),
        ({"t": "event", "s": 5, "e": ""}, 5, None),
        ({"t": "ack", "s": 2, "id": -1, "ok": "yes"}, 2, None),
        ({"t": "join", "s": 3, "id": 4, "r": ""}, 3, 4),
        ({"t": "event", "s": "5", "e": "a", "id": 7}, None, 7),
        ({"t": "event", "s": True, "e": 1}, None, None),
        ({"t": "event", "s": 2**53, "e": 1}, None, None),
        ({"t": "rx", "n": -1, "s": 3}, None, None),  # not a sequenced frame
        ({"t": "nope", "s": 3}, None, None),
    ],
)
def test_errors_carry_the_usable_sequence_number(obj: Any, seq: Any, ack_id: Any) -> None:
    """So the receiver can count a bad sequenced frame as consumed and answer its id."""
    with pytest.raises(RemoteProtocolError) as info:
        parse_frame(obj)
    assert (info.value.seq, info.value.ack_id) == (seq, ack_id)


def test_a_resume_with_a_token_instead_of_a_ticket() -> None:
    """The resume without negotiate (protocol section 2.2.1): a token, never with a
    ticket (a ticket wins, as an older server reads it)."""
    frame = parse_frame({"t": "resume", "token": "tok", "last": 4, "auth": "jwt"})
    assert frame == ResumeDirect("tok", 4, "jwt")
    assert parse_frame(frame.to_wire()) == frame
    assert ResumeDirect("tok", 0).to_wire() == {"t": "resume", "token": "tok", "last": 0}
    both = parse_frame({"t": "resume", "ticket": "tik", "token": "tok", "last": 1})
    assert both == Resume("tik", 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"token": "", "last": 0},
        {"token": "a" * 4097, "last": 0},
        {"token": 1, "last": 0},
        {"token": None, "last": 0},
        {"token": "a", "last": -1},
        {"token": "a", "last": True},
        {"token": "a"},
        {"token": "a", "last": 0, "auth": ""},
        {"token": "a", "last": 0, "auth": "x" * 16385},
        {"token": "a", "last": 0, "auth": ["x"]},
    ],
)
def test_a_resume_with_a_token_is_bounded(fields: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_frame({"t": "resume", **fields})
