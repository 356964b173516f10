"""Pure helpers shared by the client and its transports: no I/O, no event loop.

Kept apart so they can be unit-tested directly: parsing the negotiate answer, decoding
and batching frames within the server's limits, the SSE line protocol, and reading close
codes out of HTTP error bodies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from ...core.codec import Codec, JsonCodec, MsgpackCodec
from ...core.frames import MAX_NAME, Close, Frame, parse_frame
from ...core.receipts import LEGACY, RxRule
from ...core.settings import Settings

__all__ = [
    "Negotiated",
    "Offer",
    "SSEDecoder",
    "check_frame",
    "check_name",
    "decode_frames",
    "encode_bodies",
    "error_code",
    "make_codecs",
    "split_at_close",
    "ws_url",
]

_DEFAULTS = Settings()


def make_codecs() -> dict[str, Codec]:
    """One instance of each codec, by name (the core takes msgpack's functions injected)."""
    return {"json": JsonCodec(), "msgpack": MsgpackCodec(msgpack.packb, msgpack.unpackb)}


@dataclass(frozen=True, slots=True)
class Offer:
    """One transport offered by negotiate: its name, its URL path and its codec."""

    name: str
    url: str
    codec: str


@dataclass(frozen=True, slots=True)
class Negotiated:
    """A validated negotiate answer, with every duration converted to seconds."""

    sid: str
    token: str
    ticket: str
    codec: str
    resumable: bool
    transports: tuple[Offer, ...]
    send_url: str
    ping_interval: float
    ping_timeout: float
    poll_window: float
    resume_window: float
    ack_timeout: float
    max_frame_size: int
    max_batch: int
    flood_rate: float = _DEFAULTS.flood_rate
    flood_burst: int = _DEFAULTS.flood_burst
    rx: RxRule = LEGACY
    """The receipt rule the server advertised (protocol section 6.4); an older server
    advertises none: every 16 frames."""
    expires_in: float | None = None
    """Seconds until the credential expires (None: it does not, or the server does not
    say): the client refreshes it in-band before then (protocol section 11.4)."""
    ws_resume: bool = False
    """The server takes a resume without negotiate as a WebSocket's first frame
    (protocol section 2.2.1; an older server does not say so)."""

    @classmethod
    def parse(cls, obj: Any) -> Negotiated:
        """Validate the decoded JSON body of a 200 negotiate answer.

        Raises :class:`ValueError` if a required field is missing or mistyped; optional
        limits fall back to the protocol defaults (:class:`anywire.core.settings.Settings`).
        """
        if not isinstance(obj, dict):
            raise ValueError("negotiate answer is not a JSON object")

        def text(key: str, default: str | None = None) -> str:
            value = obj.get(key, default)
            if not isinstance(value, str) or not value:
                raise ValueError(f"negotiate answer: {key!r} missing or not a string")
            return value

        def number(key: str, default: float) -> float:
            value = obj.get(key)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"negotiate answer: {key!r} must be a positive number")
            return float(value)

        offers = obj.get("transports")
        if not isinstance(offers, list):
            raise ValueError("negotiate answer: 'transports' must be a list")
        parsed: list[Offer] = []
        for item in offers:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("name"), str)
                and isinstance(item.get("url"), str)
            ):
                raise ValueError("negotiate answer: malformed transport offer")
            codec = item.get("codec", obj.get("codec", "json"))
            if codec not in ("json", "msgpack"):
                raise ValueError(f"negotiate answer: unknown codec {codec!r}")
            parsed.append(Offer(item["name"], item["url"], codec))
        timings = _DEFAULTS.timings_ms()
        return cls(
            sid=text("sid"),
            token=text("token"),
            ticket=text("ticket"),
            codec=text("codec", "json"),
            resumable=obj.get("resumable") is True,
            transports=tuple(parsed),
            send_url=text("send_url", "/anywire/send"),
            ping_interval=number("ping_interval", timings["ping_interval"]) / 1000,
            ping_timeout=number("ping_timeout", timings["ping_timeout"]) / 1000,
            poll_window=number("poll_window", timings["poll_window"]) / 1000,
            resume_window=number("resume_window", timings["resume_window"]) / 1000,
            ack_timeout=number("ack_timeout", timings["ack_timeout"]) / 1000,
            max_frame_size=int(number("max_frame_size", _DEFAULTS.max_frame_size)),
            max_batch=int(number("max_batch", _DEFAULTS.max_batch)),
            flood_rate=number("flood_rate", _DEFAULTS.flood_rate),
            flood_burst=int(number("flood_burst", _DEFAULTS.flood_burst)),
            rx=RxRule.from_wire(obj.get("rx")),
            expires_in=_expires_in(obj.get("expires_in")),
            ws_resume=obj.get("ws_resume") is True,
        )


def _expires_in(value: Any) -> float | None:
    """Negotiate's ``expires_in`` (ms) in seconds; None when absent or not a uint."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value / 1000


def decode_frames(codec: Codec, data: bytes | str) -> list[Frame]:
    """Decode one message / body / SSE data field: one frame or a batch of them.

    Raises :class:`~anywire.core.errors.RemoteProtocolError` on anything invalid.
    """
    obj = codec.decode(data)
    return [parse_frame(item) for item in (obj if isinstance(obj, list) else [obj])]


def split_at_close(frames: Sequence[Frame]) -> tuple[list[Frame], Close | None]:
    """The frames up to and including the first ``close``, and that close (or None).

    Frames before a close in the same batch still count (they were sent before it);
    anything after it is meaningless because the connection ends there.
    """
    for i, frame in enumerate(frames):
        if isinstance(frame, Close):
            return list(frames[: i + 1]), frame
    return list(frames), None


def encode_bodies(
    codec: Codec,
    frames: Iterable[Frame],
    max_batch: int,
    max_size: int,
    counts: list[int] | None = None,
) -> list[bytes]:
    """Encode ``frames`` into as few messages / POST bodies as the server's limits allow.

    Order is kept. Each body holds at most ``max_batch`` frames and, when it holds more
    than one, at most ``max_size`` bytes; a single frame is sent alone (not as a batch of
    one) so it stays readable. A lone frame larger than ``max_size`` still gets its own
    body: callers check sizes before queueing (:func:`check_frame`). ``counts``, if given,
    receives the number of frames of each body (what it costs of the flood budget).
    """
    bodies: list[bytes] = []
    group: list[bytes] = []
    size = 0

    def flush() -> None:
        if group:
            bodies.append(group[0] if len(group) == 1 else codec.batch(group))
            if counts is not None:
                counts.append(len(group))

    for frame in frames:
        encoded = codec.encode(frame.to_wire())
        # A batch costs an array header (<= 5 bytes) and, in JSON, one separator per frame.
        cost = len(encoded) + 1
        if group and (len(group) >= max_batch or size + cost + 5 > max_size):
            flush()
            group, size = [], 0
        group.append(encoded)
        size += cost
    flush()
    return bodies


def check_name(name: str, what: str) -> None:
    """Refuse an event or room name the server would only answer with an error, loudly
    (ValueError), before anything is queued."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"{what} name must be a string of 1-{MAX_NAME} characters")


def check_frame(frame: Frame, codecs: Iterable[Codec], size_codec: Codec, max_size: int) -> None:
    """Make sure ``frame`` can be sent before it is queued for (re)transmission.

    A frame that cannot be encoded, or that the server would refuse as too large, would
    otherwise sit at the head of the retransmission queue and break every connection.
    It must encode with every codec the session may end up on (``codecs``; fallback can
    move it from MessagePack to JSON) and fit ``max_size`` in ``size_codec``.

    Raises :class:`TypeError` (not serializable) or :class:`ValueError` (too large; the
    caller turns it into :class:`~.errors.FrameTooLarge`).
    """
    wire = frame.to_wire()
    for codec in codecs:
        encoded = codec.encode(wire)
        if codec is size_codec and len(encoded) > max_size:
            raise ValueError(f"encoded frame is {len(encoded)} bytes, the limit is {max_size}")


class SSEDecoder:
    """Incremental Server-Sent Events parser for the ``data`` field (WHATWG rules).

    Feed it one line at a time (without the line ending); it returns the event's data
    when a blank line completes an event that had data, None otherwise. Comments
    (``:`` lines: the padding and keepalives), ``event``, ``id`` and ``retry`` fields
    are ignored: anywire puts everything in ``data``.
    """

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """Process one line; returns a complete event's data, if this line ended one."""
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]  # exactly one space after the colon belongs to the syntax
        if name == "data":
            self._data.append(value)
        return None


def error_code(body: bytes, content_type: str = "application/json") -> int | None:
    """The close code in an HTTP error body, or None if it has none.

    Understands the JSON error shape (``{"error", "code", "message"}``) and, for 410
    answers of long-poll, a close frame or a batch holding one (JSON or MessagePack).
    """
    try:
        if "msgpack" in content_type:
            obj: Any = msgpack.unpackb(body, raw=False)
        else:
            obj = json.loads(body)
    except Exception:  # any undecodable body: no code, the status decides
        return None
    items: list[Any] = obj if isinstance(obj, list) else [obj]
    for item in items:
        if not isinstance(item, dict):
            continue
        for key in ("code", "c"):
            value = item.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def ws_url(base: str, path: str) -> str:
    """The WebSocket URL for ``path`` on the server at ``base`` (http -> ws, https -> wss)."""
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + path
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + path
    return base + path  # already ws:// or wss://
