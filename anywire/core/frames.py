"""The closed set of protocol v1 frames, their validation and their canonical wire form.

A frame on the wire is a map whose ``t`` key names its type. Keys are written in the
canonical order given by each class's ``to_wire`` (which the golden vectors pin down), and
optional keys are omitted when absent. :func:`parse_frame` turns a decoded map into one of
the dataclasses below or raises :class:`RemoteProtocolError`; it never trusts types.

Sequenced frames (``event``, ``ack``, ``join``, ``leave``) carry ``s``: the sender's
per-session sequence number. Control frames (``connect``, ``resume``, ``hello``, ``ping``,
``pong``, ``rx``, ``error``, ``close``) are not sequenced and never replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from .errors import RemoteProtocolError
from .values import value_error

__all__ = [
    "MAX_NAME",
    "SEQUENCED",
    "UINT_LIMIT",
    "Ack",
    "Auth",
    "Close",
    "Connect",
    "ErrorFrame",
    "Event",
    "Frame",
    "Hello",
    "Join",
    "Leave",
    "Ping",
    "Pong",
    "Resume",
    "ResumeDirect",
    "Rx",
    "StreamPos",
    "in_order",
    "parse_frame",
]

# Frames are values: nothing mutates one after it is built, and equal fields mean equal,
# hashable frames. They are not frozen dataclasses because a frozen dataclass sets every
# field through object.__setattr__ in __init__, which alone cost ~7% of an echo round trip
# (one Event in, one Rx out per message; measured with callgrind).

StreamPos: TypeAlias = tuple[str, str, int]
"""A position in a stream: (stream id, epoch, offset)."""

MAX_NAME = 200
"""Longest event or room name, in characters."""

UINT_LIMIT = 2**53
"""Every number in a frame (``s``, ``id``, ``n``, ...) is below this (exact in JSON)."""


def _req(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if value is None or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise RemoteProtocolError(f"{what}: field {key!r} is missing or has the wrong type")
    return value


def _opt(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise RemoteProtocolError(f"{what}: field {key!r} has the wrong type")
    return value


def _seq(obj: dict[str, Any], key: str, what: str) -> int:
    value = _req(obj, key, int, what)
    if value < 0 or value >= UINT_LIMIT:
        raise RemoteProtocolError(f"{what}: field {key!r} is out of range")
    return int(value)


def _name(obj: dict[str, Any], key: str, what: str) -> str:
    value = _req(obj, key, str, what)
    if not value or len(value) > MAX_NAME:
        raise RemoteProtocolError(f"{what}: field {key!r} must be 1-{MAX_NAME} characters")
    return str(value)


@dataclass(slots=True, unsafe_hash=True)
class Connect:
    """Client, first frame of a new connection: redeem a negotiate ticket."""

    ticket: str
    type: ClassVar[str] = "connect"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "connect", "ticket": self.ticket}


@dataclass(slots=True, unsafe_hash=True)
class Resume:
    """Client, first frame of a returning connection: ticket plus last server seq seen."""

    ticket: str
    last: int
    type: ClassVar[str] = "resume"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "resume", "ticket": self.ticket, "last": self.last}


MAX_RESUME_TOKEN = 4096
"""Longest session token a ``resume`` without ticket may carry (tokens are ~200 bytes)."""
MAX_RESUME_AUTH = 16384
"""Longest credential a ``resume`` without ticket may carry (a JWT is well under 2 KB)."""


@dataclass(slots=True, unsafe_hash=True)
class ResumeDirect:
    """Client, first frame of a WebSocket that resumes without a negotiate (protocol
    section 2.2.1): the session ``token`` negotiate gave, the last server seq seen, and
    ``auth``, the credential negotiate would be sent (None in anonymous mode)."""

    token: str
    last: int
    auth: str | None = None
    type: ClassVar[str] = "resume"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": "resume", "token": self.token, "last": self.last}
        if self.auth is not None:
            out["auth"] = self.auth
        return out


@dataclass(slots=True, unsafe_hash=True)
class Hello:
    """Server, first frame of every connection.

    ``seq`` is the server sequence number the client should consider itself caught up to
    before replay (its own ``last`` when recovered, the current counter otherwise); ``last``
    is the highest client sequence number the server has processed, so the client can drop
    or retransmit its unconfirmed frames.

    ``streams`` (a fresh session only) lists the position each stream the session
    receives without joining (its user's, its own, its namespace's) starts from: the
    client catches up from there after a later loss of the session.

    ``expires_in`` (a resume without negotiate only, protocol section 2.2.1): what
    negotiate's answer would say, the milliseconds until the credential of that resume
    expires; None: it does not (or the hello answers a ticket, whose negotiate said).
    """

    sid: str
    recovered: bool
    seq: int
    last: int
    streams: tuple[StreamPos, ...] | None = None
    expires_in: int | None = None
    type: ClassVar[str] = "hello"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "t": "hello",
            "sid": self.sid,
            "recovered": self.recovered,
            "seq": self.seq,
            "last": self.last,
        }
        if self.streams is not None:
            out["streams"] = [list(p) for p in self.streams]
        if self.expires_in is not None:
            out["expires_in"] = self.expires_in
        return out


@dataclass(slots=True, unsafe_hash=True)
class Event:
    """A named event with data. ``id`` asks the receiver for an ``ack``; ``r`` names the room
    it was broadcast to; ``o`` is its position in a room or user stream."""

    s: int
    e: str
    d: Any = None
    id: int | None = None
    r: str | None = None
    o: StreamPos | None = None
    type: ClassVar[str] = "event"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": "event", "s": self.s}
        if self.id is not None:
            out["id"] = self.id
        out["e"] = self.e
        out["d"] = self.d
        if self.r is not None:
            out["r"] = self.r
        if self.o is not None:
            out["o"] = list(self.o)
        return out


@dataclass(slots=True, unsafe_hash=True)
class Ack:
    """The reply to a frame that carried ``id``: ``ok`` with data ``d``, or an error ``err``
    (``{"code": str, "message": str}``)."""

    s: int
    id: int
    ok: bool
    d: Any = None
    err: dict[str, str] | None = None
    type: ClassVar[str] = "ack"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": "ack", "s": self.s, "id": self.id, "ok": self.ok}
        if self.ok:
            out["d"] = self.d
        else:
            out["err"] = self.err or {"code": "error", "message": ""}
        return out


@dataclass(slots=True, unsafe_hash=True)
class Join:
    """Client asks to join room ``r`` (answered by an ``ack`` with the same ``id``).

    ``since`` is ``[epoch, offset]``, the last position the client holds in the room's
    stream (from the ``o`` of its events): the server then replays the room's events
    after it from history before live ones, and the ack says ``recovered``."""

    s: int
    id: int
    r: str
    meta: Any = None
    since: tuple[str, int] | None = None
    type: ClassVar[str] = "join"

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": "join", "s": self.s, "id": self.id, "r": self.r}
        if self.meta is not None:
            out["meta"] = self.meta
        if self.since is not None:
            out["since"] = list(self.since)
        return out


@dataclass(slots=True, unsafe_hash=True)
class Leave:
    """Client asks to leave room ``r`` (answered by an ``ack`` with the same ``id``)."""

    s: int
    id: int
    r: str
    type: ClassVar[str] = "leave"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "leave", "s": self.s, "id": self.id, "r": self.r}


@dataclass(slots=True, unsafe_hash=True)
class Auth:
    """Client: a fresh credential for the live session (in-band refresh), answered by an
    ``ack`` with the same ``id``: ``{"expires_in": ms}`` (absent: it never expires), or
    the error ``unauthorized``. Not sequenced: a refresh lost with its connection is
    simply made again (the reconnect's negotiate carries a fresh credential anyway)."""

    id: int
    token: str
    type: ClassVar[str] = "auth"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "auth", "id": self.id, "token": self.token}


@dataclass(slots=True, unsafe_hash=True)
class Ping:
    """Heartbeat request; the peer answers ``pong`` at once."""

    type: ClassVar[str] = "ping"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "ping"}


@dataclass(slots=True, unsafe_hash=True)
class Pong:
    """Heartbeat answer."""

    type: ClassVar[str] = "pong"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "pong"}


@dataclass(slots=True, unsafe_hash=True)
class Rx:
    """Cumulative acknowledgement: the sender has received every sequenced frame <= ``n``."""

    n: int
    type: ClassVar[str] = "rx"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "rx", "n": self.n}


@dataclass(slots=True, unsafe_hash=True)
class ErrorFrame:
    """Server: a frame was rejected but the connection lives on. ``c`` is a close code from
    the terminal range describing the problem, ``m`` a human-readable reason."""

    c: int
    m: str
    type: ClassVar[str] = "error"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "error", "c": self.c, "m": self.m}


@dataclass(slots=True, unsafe_hash=True)
class Close:
    """Either side: the connection ends with code ``c`` and reason ``m``."""

    c: int
    m: str = ""
    type: ClassVar[str] = "close"

    def to_wire(self) -> dict[str, Any]:
        return {"t": "close", "c": self.c, "m": self.m}


Frame: TypeAlias = (
    Connect
    | Resume
    | ResumeDirect
    | Hello
    | Event
    | Ack
    | Join
    | Leave
    | Auth
    | Ping
    | Pong
    | Rx
    | ErrorFrame
    | Close
)

SEQUENCED: frozenset[str] = frozenset({"event", "ack", "join", "leave"})
"""Frame types that carry ``s`` and are deduplicated and replayed."""


def _parse_stream_pos(value: Any, what: str = "event: field 'o'") -> StreamPos | None:
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], str)
        and isinstance(value[2], int)
        and not isinstance(value[2], bool)
    ):
        return (value[0], value[1], value[2])
    raise RemoteProtocolError(f"{what} must be [stream, epoch, offset]")


def _resume_direct(obj: dict[str, Any]) -> ResumeDirect:
    """A ``resume`` carrying a session token instead of a ticket (hostile input: every
    field bounded, the credential a string or absent)."""
    token = _req(obj, "token", str, "resume")
    if not token or len(token) > MAX_RESUME_TOKEN:
        raise RemoteProtocolError(f"resume: field 'token' must be 1-{MAX_RESUME_TOKEN} characters")
    auth = _opt(obj, "auth", str, "resume")
    if auth is not None and not 0 < len(auth) <= MAX_RESUME_AUTH:
        raise RemoteProtocolError(f"resume: field 'auth' must be 1-{MAX_RESUME_AUTH} characters")
    return ResumeDirect(token=token, last=_seq(obj, "last", "resume"), auth=auth)


def _parse_streams(value: Any) -> tuple[StreamPos, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        out = []
        for item in value:
            pos = _parse_stream_pos(item, "hello: field 'streams'")
            if pos is None or _uint(pos[2]) is None:
                break
            out.append(pos)
        else:
            return tuple(out)
    raise RemoteProtocolError("hello: field 'streams' must be a list of [stream, epoch, offset]")


def _parse_since(value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and _uint(value[1]) is not None
    ):
        return (value[0], value[1])
    raise RemoteProtocolError("join: field 'since' must be [epoch, offset]")


def _parse_err(value: Any) -> dict[str, str]:
    if (
        isinstance(value, dict)
        and isinstance(value.get("code"), str)
        and isinstance(value.get("message", ""), str)
    ):
        return {"code": value["code"], "message": value.get("message", "")}
    raise RemoteProtocolError("ack: field 'err' must be {code: str, message: str}")


def parse_frame(obj: Any, check: bool = False, max_depth: int | None = None) -> Frame:
    """Validate a decoded map and return the frame it describes.

    Raises :class:`RemoteProtocolError` for anything that is not a valid v1 frame; if the
    map still had a valid ``s`` (and ``id``), the error carries them as ``seq``/``ack_id``.
    ``check`` (the codec found the message suspect: ``Codec.suspect``): every value in
    the frame is checked against the shared data model too (integer range, finite floats,
    string keys) and its nesting against ``max_depth``.
    """
    try:
        if check:
            problem = value_error(obj, max_depth)
            if problem is not None:
                t = obj.get("t") if isinstance(obj, dict) else None
                what = t if type(t) is str and len(t) <= 20 else "frame"
                raise RemoteProtocolError(f"{what}: {problem}")
        return _parse(obj)
    except RemoteProtocolError as exc:
        t = obj.get("t") if isinstance(obj, dict) else None
        if type(t) is str and t in SEQUENCED:  # t may be any value (a list: unhashable)
            exc.seq = _uint(obj.get("s"))
            # An ack answers; it is never answered (its id is the other side's).
            exc.ack_id = _uint(obj.get("id")) if obj.get("t") != "ack" else None
        raise


def _uint(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < UINT_LIMIT:
        return value
    return None


def _parse(obj: Any) -> Frame:
    if not isinstance(obj, dict):
        raise RemoteProtocolError("a frame must be a map")
    t = obj.get("t")
    if t == "event":
        # The common shape first, checked inline (an echo's hot path): plain ints in
        # range, a short name, no room or position. Anything else, valid or not, takes
        # the general path below, which words the errors.
        s, e, i = obj.get("s"), obj.get("e"), obj.get("id")
        if (
            type(s) is int
            and 0 <= s < UINT_LIMIT
            and type(e) is str
            and 0 < len(e) <= MAX_NAME
            and (i is None or (type(i) is int and 0 <= i < UINT_LIMIT))
            and "r" not in obj
            and "o" not in obj
        ):
            return Event(s, e, obj.get("d"), i)
        return Event(
            s=_seq(obj, "s", t),
            e=_name(obj, "e", t),
            d=obj.get("d"),
            id=None if obj.get("id") is None else _seq(obj, "id", t),
            r=_opt(obj, "r", str, t),
            o=_parse_stream_pos(obj.get("o")),
        )
    if t == "ack":
        ok = _req(obj, "ok", bool, t)
        return Ack(
            s=_seq(obj, "s", t),
            id=_seq(obj, "id", t),
            ok=ok,
            d=obj.get("d") if ok else None,
            err=None if ok else _parse_err(obj.get("err")),
        )
    if t == "rx":
        return Rx(n=_seq(obj, "n", t))
    if t == "ping":
        return Ping()
    if t == "pong":
        return Pong()
    if t == "join":
        return Join(
            s=_seq(obj, "s", t),
            id=_seq(obj, "id", t),
            r=_name(obj, "r", t),
            meta=obj.get("meta"),
            since=_parse_since(obj.get("since")),
        )
    if t == "leave":
        return Leave(s=_seq(obj, "s", t), id=_seq(obj, "id", t), r=_name(obj, "r", t))
    if t == "auth":
        token = _req(obj, "token", str, t)
        if not token:
            raise RemoteProtocolError("auth: field 'token' must not be empty")
        return Auth(id=_seq(obj, "id", t), token=token)
    if t == "connect":
        return Connect(ticket=_req(obj, "ticket", str, t))
    if t == "resume":
        if "ticket" in obj or "token" not in obj:
            return Resume(ticket=_req(obj, "ticket", str, t), last=_seq(obj, "last", t))
        return _resume_direct(obj)
    if t == "hello":
        return Hello(
            sid=_req(obj, "sid", str, t),
            recovered=_req(obj, "recovered", bool, t),
            seq=_seq(obj, "seq", t),
            last=_seq(obj, "last", t),
            streams=_parse_streams(obj.get("streams")),
            expires_in=None if obj.get("expires_in") is None else _seq(obj, "expires_in", t),
        )
    if t == "close":
        return Close(c=_seq(obj, "c", t), m=_opt(obj, "m", str, t) or "")
    if t == "error":
        return ErrorFrame(c=_seq(obj, "c", t), m=_opt(obj, "m", str, t) or "")
    raise RemoteProtocolError(f"unknown frame type {t!r:.40}")  # t may be any value


def in_order(last: int, frame: Frame, sender: str) -> bool:
    """Whether sequenced ``frame`` is the next one after ``last`` (deliver it) or an
    old one (a duplicate: drop it). A frame that skips ahead means frames were lost:
    :class:`RemoteProtocolError`. ``sender`` names the peer in the message."""
    s: int = frame.s  # type: ignore[union-attr]
    if s <= last:
        return False
    if s != last + 1:
        raise RemoteProtocolError(f"{sender} sequence gap: expected {last + 1}, got {s}")
    return True
