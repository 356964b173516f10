"""The Python client's pure parts: the reconnect schedule, and the wire helpers its
transports are built on (negotiate parsing, batching within limits, SSE parsing, close
codes in HTTP error bodies). No event loop, no sockets."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import msgpack
import pytest

from anywire.clients.python import backoff
from anywire.clients.python.wire import (
    Negotiated,
    SSEDecoder,
    check_frame,
    decode_frames,
    encode_bodies,
    error_code,
    make_codecs,
    split_at_close,
    ws_url,
)
from anywire.core.codec import Codec
from anywire.core.errors import RemoteProtocolError
from anywire.core.frames import Close, Event, Frame, Ping, Rx

CODECS = make_codecs()


class Top(random.Random):
    """Always draws the upper bound, to read the ceiling off the schedule."""

    def uniform(self, a: float, b: float) -> float:
        return b


# -- backoff --------------------------------------------------------------------------


def test_ceiling_doubles_from_base_then_holds_at_the_cap() -> None:
    assert list(itertools.islice(backoff(0.5, 4.0, rand=Top()), 7)) == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
        4.0,
        4.0,
    ]


def test_delays_are_full_jitter_under_the_ceiling() -> None:
    delays = list(itertools.islice(backoff(0.5, 10.0, rand=random.Random(7)), 50))
    ceilings = [min(10.0, 0.5 * 2**n) for n in range(50)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    # Full jitter draws from [0, ceiling], not [ceiling/2, ceiling]: some are small.
    assert min(delays[10:]) < 5.0


def test_schedule_is_reproducible_with_a_seeded_random() -> None:
    a = list(itertools.islice(backoff(rand=random.Random(3)), 10))
    b = list(itertools.islice(backoff(rand=random.Random(3)), 10))
    assert a == b


def test_a_crowd_does_not_come_back_in_lockstep() -> None:
    firsts = [next(backoff(1.0, 10.0, rand=random.Random(seed))) for seed in range(300)]
    assert len({round(d, 3) for d in firsts}) > 250
    assert 0.4 < sum(firsts) / len(firsts) < 0.6  # uniform on [0, 1]


def test_long_outages_never_overflow() -> None:
    last = list(itertools.islice(backoff(0.5, 30.0, rand=Top()), 5000))[-1]
    assert last == 30.0


def test_cap_below_base_caps_the_first_delay_too() -> None:
    assert next(backoff(5.0, 1.0, rand=Top())) == 1.0


@pytest.mark.parametrize(("base", "cap", "factor"), [(0, 1, 2), (1, 0, 2), (1, 1, 0.5)])
def test_nonsense_parameters_are_refused(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError):
        backoff(base, cap, factor)


# -- negotiate answer ---------------------------------------------------------------


def negotiate_answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "v": 1,
        "sid": "s1",
        "token": "tok",
        "ticket": "tkt",
        "codec": "msgpack",
        "resumable": False,
        "transports": [
            {"name": "websocket", "url": "/anywire/ws", "codec": "msgpack"},
            {"name": "sse", "url": "/anywire/sse", "codec": "json"},
        ],
        "send_url": "/anywire/send",
        "ping_interval": 20000,
        "ping_timeout": 10000,
        "poll_window": 20000,
        "resume_window": 30000,
        "ack_timeout": 10000,
        "max_frame_size": 65536,
        "max_batch": 100,
    }
    answer.update(overrides)
    return answer


def test_negotiate_answer_is_parsed_into_seconds() -> None:
    neg = Negotiated.parse(negotiate_answer(ping_interval=1500, resumable=True))
    assert neg.sid == "s1" and neg.token == "tok" and neg.ticket == "tkt"
    assert neg.resumable is True
    assert neg.ping_interval == 1.5 and neg.ping_timeout == 10.0 and neg.ack_timeout == 10.0
    assert [(o.name, o.url, o.codec) for o in neg.transports] == [
        ("websocket", "/anywire/ws", "msgpack"),
        ("sse", "/anywire/sse", "json"),
    ]
    assert neg.max_frame_size == 65536 and neg.max_batch == 100


def test_missing_limits_fall_back_to_protocol_defaults() -> None:
    answer = negotiate_answer()
    for key in ("ping_interval", "max_batch", "send_url", "resumable"):
        del answer[key]
    neg = Negotiated.parse(answer)
    assert neg.ping_interval == 20.0 and neg.max_batch == 100
    assert neg.send_url == "/anywire/send" and neg.resumable is False


@pytest.mark.parametrize(
    "answer",
    [
        [],
        negotiate_answer(sid=None),
        negotiate_answer(ticket=""),
        negotiate_answer(transports="websocket"),
        negotiate_answer(transports=[{"name": "sse"}]),
        negotiate_answer(transports=[{"name": "sse", "url": "/s", "codec": "xml"}]),
        negotiate_answer(ping_interval=-1),
        negotiate_answer(ack_timeout=True),
    ],
)
def test_malformed_negotiate_answers_are_refused(answer: Any) -> None:
    with pytest.raises(ValueError):
        Negotiated.parse(answer)


# -- frames in and out ----------------------------------------------------------------


def events(n: int, size: int = 10) -> list[Frame]:
    return [Event(s=i + 1, e="n", d="x" * size) for i in range(n)]


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_bodies_round_trip_in_order(name: str) -> None:
    codec = CODECS[name]
    frames = [*events(5), Rx(3), Ping()]
    bodies = encode_bodies(codec, frames, max_batch=100, max_size=65536)
    assert len(bodies) == 1
    assert decode_frames(codec, bodies[0]) == frames


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_a_single_frame_is_not_wrapped_in_a_batch(name: str) -> None:
    codec = CODECS[name]
    (body,) = encode_bodies(codec, [Ping()], max_batch=100, max_size=65536)
    assert isinstance(codec.decode(body), dict)


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_batches_respect_max_batch(name: str) -> None:
    codec = CODECS[name]
    frames = events(250)
    bodies = encode_bodies(codec, frames, max_batch=100, max_size=10**9)
    counts = [len(decode_frames(codec, b)) for b in bodies]
    assert counts == [100, 100, 50]
    assert [f for b in bodies for f in decode_frames(codec, b)] == frames


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_batches_respect_max_size(name: str) -> None:
    codec: Codec = CODECS[name]
    frames = events(60, size=200)
    bodies = encode_bodies(codec, frames, max_batch=100, max_size=2000)
    assert len(bodies) > 6
    assert all(len(b) <= 2000 for b in bodies)
    assert [f for b in bodies for f in decode_frames(codec, b)] == frames


def test_an_oversized_lone_frame_still_gets_its_own_body() -> None:
    codec = CODECS["json"]
    big, small = Event(s=1, e="big", d="x" * 5000), Event(s=2, e="small")
    bodies = encode_bodies(codec, [small, big, small], max_batch=100, max_size=1000)
    assert [decode_frames(codec, b) for b in bodies] == [[small], [big], [small]]


def test_decode_rejects_invalid_frames() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_frames(CODECS["json"], b'{"t":"nope"}')
    with pytest.raises(RemoteProtocolError):
        decode_frames(CODECS["json"], b"[{")
    with pytest.raises(RemoteProtocolError):
        decode_frames(CODECS["msgpack"], "text is not msgpack")


def test_frames_after_a_close_are_dropped_but_those_before_it_kept() -> None:
    e1, e2 = Event(s=1, e="a"), Event(s=2, e="b")
    kept, close = split_at_close([e1, Close(4000, "bye"), e2])
    assert kept == [e1, Close(4000, "bye")] and close == Close(4000, "bye")
    assert split_at_close([e1, e2]) == ([e1, e2], None)


def test_check_frame_catches_unencodable_and_oversized_frames() -> None:
    json_codec, mp = CODECS["json"], CODECS["msgpack"]
    check_frame(Event(s=1, e="ok", d={"b": b"\x00"}), [mp, json_codec], mp, 1000)
    with pytest.raises(TypeError):  # msgpack can, JSON cannot: fallback would break it
        check_frame(Event(s=1, e="nan", d=float("nan")), [mp, json_codec], mp, 1000)
    with pytest.raises(TypeError):
        check_frame(Event(s=1, e="obj", d=object()), [json_codec], json_codec, 1000)
    with pytest.raises(ValueError):
        check_frame(Event(s=1, e="big", d="x" * 2000), [mp, json_codec], mp, 1000)


# -- SSE ------------------------------------------------------------------------------


def feed(lines: list[str]) -> list[str]:
    decoder = SSEDecoder()
    return [d for d in map(decoder.feed, lines) if d is not None]


def test_sse_events_end_at_a_blank_line() -> None:
    assert feed(['data: {"t":"ping"}', "", 'data:{"t":"pong"}', ""]) == [
        '{"t":"ping"}',
        '{"t":"pong"}',
    ]


def test_sse_comments_and_other_fields_are_ignored() -> None:
    lines = [": " + " " * 2048, "", ": keepalive", "event: message", "id: 7", "retry: 10"]
    assert feed([*lines, "data: x", ""]) == ["x"]


def test_sse_multiline_data_is_joined_and_only_one_space_stripped() -> None:
    assert feed(["data: a", "data:  b", "data", ""]) == ["a\n b\n"]


def test_sse_incomplete_event_is_not_delivered() -> None:
    assert feed(["data: x"]) == []


# -- HTTP errors and URLs -------------------------------------------------------------


def test_error_code_from_json_error_bodies() -> None:
    body = json.dumps({"error": "unauthorized", "code": 4501, "message": "bad"}).encode()
    assert error_code(body) == 4501


def test_error_code_from_a_close_frame_batch_in_either_codec() -> None:
    close = {"t": "close", "c": 4007, "m": "gone"}
    assert error_code(json.dumps([close]).encode()) == 4007
    assert error_code(msgpack.packb([close]), "application/msgpack") == 4007
    assert error_code(json.dumps(close).encode()) == 4007


@pytest.mark.parametrize("body", [b"", b"bad gateway", b"{}", b'{"code": true}', b"[1,2]"])
def test_no_error_code_without_one_in_the_body(body: bytes) -> None:
    assert error_code(body) is None


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://h:8000", "ws://h:8000/anywire/ws"),
        ("https://h", "wss://h/anywire/ws"),
        ("ws://h", "ws://h/anywire/ws"),
    ],
)
def test_websocket_url(base: str, expected: str) -> None:
    assert ws_url(base, "/anywire/ws") == expected
