"""The two wire codecs (JSON text, MessagePack binary) and encode-once broadcasts.

Both codecs write the canonical key order of :mod:`anywire.core.frames`, so one frame has
exactly one encoding per codec (the golden vectors in ``tests/vectors`` pin it).

Binary values are native in MessagePack. In JSON a ``bytes`` value is written as the
one-key object ``{"$bin": "<base64>"}`` and read back as ``bytes``, so an event means the
same thing on both codecs.

The core imports nothing outside the standard library, so :class:`MsgpackCodec` is given
the ``packb``/``unpackb`` functions of the msgpack package by the composition root
(:func:`anywire.server.codecs.make_codecs`); tests and clients do the same.

Broadcasts: an :class:`Outgoing` is one frame body shared by every recipient. Its bytes are
encoded at most once per codec; each session only splices its own small envelope (``t`` and
its sequence number ``s``) in front. See :meth:`Codec.frame`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from collections.abc import Callable, Iterable
from typing import Any, Protocol

try:  # CPython's C accelerator of the json module (absent on some interpreters)
    from json.encoder import c_encode_basestring as _c_encode_basestring  # type: ignore[attr-defined]
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _c_make_encoder = _c_encode_basestring = None

from .closecodes import CloseCode
from .errors import RemoteProtocolError
from .frames import MAX_NAME, UINT_LIMIT, Event, StreamPos
from .values import INT_MAX, INT_MIN, value_error

__all__ = ["Codec", "JsonCodec", "MsgpackCodec", "Outgoing"]


def _once(seq: int) -> bytes:  # pragma: no cover (a marker, never called)
    raise AssertionError("Outgoing._splice marker called")


_ONCE: Callable[[int], bytes] = _once

# JsonCodec.decode_rx(): the receipt as clients write it, {"t":"rx","n":N}.
_RX_OPEN = b'{"t":"rx","n":'
_RX_OPEN_TEXT = _RX_OPEN.decode()
_RX_DIGITS = len(_RX_OPEN)
_RX_LONGEST = _RX_DIGITS + len(str(UINT_LIMIT - 1)) + 1
_ZERO = (48, "0")  # a leading zero, as a byte of bytes or a character of str


class Outgoing:
    """A server-to-client sequenced frame before its sequence number is known.

    ``fields`` holds every key but ``t`` and ``s``, already in canonical order. The encoded
    body is cached per codec, so a room broadcast is serialized once per codec however many
    sessions receive it.
    """

    __slots__ = ("_bodies", "_first", "_first_codec", "_splice", "fields", "pos", "size", "type")

    def __init__(self, type: str, fields: dict[str, Any], pos: StreamPos | None = None) -> None:
        self.type = type
        self.fields = fields
        # The stream position of an event (the ``o`` in ``fields``), for the session's
        # per-stream dedupe: a session never gets the same stream offset twice.
        self.pos = pos
        # The first codec's body in two slots, a dict only for further codecs: most
        # frames (every ack) are only ever encoded for one.
        self._first_codec: str | None = None
        self._first = b""
        self._bodies: dict[str, bytes] | None = None
        # The first codec's whole frame as a function of the sequence number
        # (Codec.splicer), made at the second frame asked for (making it costs about one
        # frame: a replayed event or an ack, framed once, gains nothing); _ONCE: framed once.
        self._splice: Callable[[int], bytes] | None = None
        # The encoded size, set once (by the first encoding, whatever the codec) and never
        # changed: a session's outbox is bounded in bytes, and what it adds for a frame
        # it must be able to subtract again. 0: not encoded yet.
        self.size = 0

    def body(self, codec: Codec) -> bytes:
        """The encoded fields for ``codec`` (cached)."""
        name = codec.name
        if name == self._first_codec:
            return self._first
        if self._first_codec is None:
            self._first = codec.encode_body(self.fields)
            self._first_codec = name
            if not self.size:
                self.size = len(self._first)
            return self._first
        if self._bodies is None:
            self._bodies = {}
        cached = self._bodies.get(name)
        if cached is None:
            cached = self._bodies[name] = codec.encode_body(self.fields)
        return cached

    def frame(self, codec: Codec, seq: int) -> bytes:
        """The whole frame numbered ``seq`` for ``codec``: ``codec.frame(type, seq,
        body(codec))`` byte for byte. This runs once per recipient of a broadcast: for the
        first codec the part that does not depend on ``seq`` is joined once
        (:meth:`Codec.splicer`), so each recipient costs one splice. Raises TypeError
        like :meth:`body`."""
        if codec.name == self._first_codec:
            splice = self._splice
            if splice is None:  # the first frame: maybe the only one (a replay, an ack)
                self._splice = _ONCE
            elif splice is not _ONCE:
                return splice(seq)
            elif self.type == "event":  # the second: a broadcast
                splice = self._splice = codec.splicer(self.type, self._first)
                return splice(seq)
            return codec.frame(self.type, seq, self._first)
        return codec.frame(self.type, seq, self.body(codec))

    def to_wire(self, seq: int) -> dict[str, Any]:
        """The full frame map with sequence number ``seq`` (for tests and debugging)."""
        return {"t": self.type, "s": seq, **self.fields}


class Codec(Protocol):
    """What every codec offers. ``binary`` says whether it needs binary WebSocket frames."""

    name: str
    binary: bool
    content_type: str
    max_depth: int | None
    """Deepest nesting of maps and arrays :meth:`suspect` lets through unflagged (a
    frame's own map is level 1); None: no bound (the decoder's own)."""

    def encode(self, obj: dict[str, Any]) -> bytes:
        """One frame map to bytes. Raises TypeError for a value outside the shared data
        model (anywire.core.values): an integer outside -2^63 .. 2^64-1, a non-finite
        float, a type the codec does not know."""
        ...

    def suspect(self, data: bytes | str) -> bool:
        """Whether a message (decoded without error) might hold a value outside the
        shared data model or nest deeper than ``max_depth``: a cheap scan of its bytes.
        False is certain; True means checking the decoded frames with
        ``anywire.core.values.value_error()`` (``parse_frame(..., check=True)``)."""
        ...

    def decode(self, data: bytes | str) -> Any:
        """Bytes to a frame map, or a list of them (a batch). Raises RemoteProtocolError."""
        ...

    def decode_event(self, data: bytes | str) -> Event | None:
        """The commonest client message, one event (``t``, ``s``, ``e``, optionally ``id``
        and ``d``, nothing else), straight to an :class:`Event` when the codec has a
        decoder for it; None otherwise: then :meth:`decode` and ``parse_frame()`` decide,
        and they alone word errors. Never a different answer from theirs."""
        ...

    def decode_rx(self, data: bytes | str) -> int | None:
        """The commonest client message under a stream, one ``rx`` frame written the way
        the clients write it (:meth:`rx`), straight to its ``n``; None for anything else
        (then :meth:`decode` and ``parse_frame()`` decide, and they alone word errors).
        Never a different answer from theirs: an ``n`` returned is the one
        ``parse_frame(decode(data))`` would give as ``Rx(n)``."""
        ...

    def encode_body(self, fields: dict[str, Any]) -> bytes:
        """Encode ``fields`` as the tail of a frame, for :meth:`frame`."""
        ...

    def frame(self, type: str, seq: int, body: bytes) -> bytes:
        """Splice ``{"t": type, "s": seq, <body>}`` together without re-encoding the body."""
        ...

    def splicer(self, type: str, body: bytes) -> Callable[[int], bytes]:
        """A function of the sequence number giving ``frame(type, seq, body)`` byte for
        byte: what does not depend on the number is joined once (a broadcast's frame is
        then one formatting operation per recipient)."""
        ...

    def batch(self, frames: Iterable[bytes]) -> bytes:
        """Join already-encoded frames into one batch (a JSON array / msgpack array)."""
        ...

    def rx(self, n: int) -> bytes:
        """The frame ``{"t": "rx", "n": n}``, byte for byte what :meth:`encode` writes (it
        rides along with almost every write, so it is built without the encoder)."""
        ...

    def reply(self, receipt: int | None, seq: int, body: bytes) -> bytes:
        """The message answering a client request: ``frame("ack", seq, body)``, after
        ``rx(receipt)`` in a batch when ``receipt`` is not None. Byte for byte what those
        methods give, in one step (the echo hot path)."""
        ...


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bin": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not serializable")


def _json_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$bin" in obj and isinstance(obj["$bin"], str):
        try:
            return base64.b64decode(obj["$bin"], validate=True)
        except binascii.Error as exc:
            raise RemoteProtocolError("invalid base64 in $bin") from exc
    return obj


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

# JSON's prefilter (JsonCodec.suspect, and the encoder's check): every byte mapped to
# "0" (a digit), "[" (an opening bracket) or " ", so a single C search finds a run of 19
# digits (an integer outside the MessagePack range has at least 19) and one count the
# brackets (nesting needs as many). Brackets and digits inside strings only cause a
# needless exact check, never a missed one.
_JSON_CLASSES = bytes(
    ord("0") if chr(b).isdigit() and b < 128 else ord("[") if b in b"[{" else ord(" ")
    for b in range(256)
)
_LONG_RUN = b"0" * 19


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Nesting _plain_json() follows before it leaves a value to the reference encoder.
_PLAIN_DEPTH = 32


def _plain_json(value: dict[str, Any] | list[Any], depth: int) -> bool:
    """Whether ``value`` (a map or an array) holds nothing but maps with string keys,
    arrays, strings, booleans, None and integers of the data model, no deeper than
    ``_PLAIN_DEPTH``: what msgspec's JSON encoder writes byte for byte as the standard
    library's does (every string, checked for each code point; the integers) and what
    needs no check of the data model. Anything else (floats, which msgspec spells
    differently, e.g. ``1e16`` for ``1e+16``; bytes, which it writes as base64 rather
    than ``$bin``; tuples, sets, subclasses, types the standard library refuses and
    msgspec writes) is the reference encoder's. (Hot path: every ack and event body.)"""
    if depth > _PLAIN_DEPTH:
        return False
    items: Iterable[Any]
    if type(value) is dict:
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    elif type(value) is list:
        items = value
    else:
        return False
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not INT_MIN <= item <= INT_MAX:
                return False
        elif (kind is not dict and kind is not list) or not _plain_json(item, depth + 1):
            return False
    return True


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400: the encoder could never write it back
        raise ValueError(f"{text} is out of range")
    return value


class JsonCodec:
    """Compact UTF-8 JSON (non-ASCII written as is), one frame per text message.

    ``fast_decode`` (optional, injected like msgpack's functions: the server passes
    msgspec's C decoder) reads ordinary messages several times faster than the standard
    library. It only ever accepts: a message that holds a ``\\u`` escape or a ``$bin``
    key, or that it refuses for any reason, goes through the standard library path,
    which alone decides what is valid and words the errors. Both refuse NaN, Infinity,
    out-of-range numbers and lone surrogates; msgspec takes escapes only where spelled
    ``\\u``, which is why those messages take the reference path.
    """

    name = "json"
    binary = False
    content_type = "application/json"

    def __init__(
        self,
        fast_decode: Callable[[bytes | str], Any] | None = None,
        fast_event: Callable[[bytes | str], Any] | None = None,
        max_depth: int | None = None,
        fast_encode: Callable[[Any], bytes] | None = None,
    ) -> None:
        self._fast_decode = fast_decode
        self._fast_event = fast_event
        # msgspec's encoder (injected by the server): used only for values _plain_json()
        # passes, where it writes the very bytes the standard library would.
        self._fast_encode = fast_encode
        self.max_depth = max_depth
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
        )
        # The C encoder behind JSONEncoder, built once: JSONEncoder.encode() rebuilds it
        # and walks Python code on every call, which costs more than encoding a small
        # frame (every ack, rx and reply). Same output; circular data ends in
        # RecursionError instead of a "circular reference" ValueError (both refused).
        self._fast = None
        if _c_make_encoder is not None and _c_encode_basestring is not None:
            self._fast = _c_make_encoder(
                None, _json_default, _c_encode_basestring, None, ":", ",", False, False, False
            )
        # NaN/Infinity are not JSON and the encoder (allow_nan=False) cannot write them
        # back: accepting them would let one peer plant a frame nobody can be sent.
        self._decoder = json.JSONDecoder(
            object_hook=_json_hook, parse_constant=_reject_constant, parse_float=_finite_float
        )

    def encode(self, obj: dict[str, Any]) -> bytes:
        fast_encode = self._fast_encode
        if fast_encode is not None and _plain_json(obj, 0):
            try:
                return fast_encode(obj)
            except ValueError:  # a lone surrogate: the reference path refuses it, worded
                pass
        try:
            if self._fast is not None:
                out = "".join(self._fast(obj, 0)).encode("utf-8")
            else:
                out = self._encoder.encode(obj).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"cannot encode as JSON: {exc}") from exc
        # JSON itself carries any integer; the protocol does not (a MessagePack peer could
        # never be sent it). Only output with a long digit run can hold one.
        if out.translate(_JSON_CLASSES).find(_LONG_RUN) >= 0:
            problem = value_error(obj, None, keys=False)
            if problem is not None:
                raise TypeError(f"cannot encode as JSON: {problem}")
        return out

    def suspect(self, data: bytes | str) -> bool:
        # (Three C calls, ~0.3 us for an echo message: measured in docs/hardening/validation.md.)
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        classes = raw.translate(_JSON_CLASSES)
        depth = self.max_depth
        return (depth is not None and classes.count(b"[") > depth) or classes.find(_LONG_RUN) >= 0

    def decode(self, data: bytes | str) -> Any:
        fast = self._fast_decode
        if fast is not None:
            if isinstance(data, str):
                plain = "\\u" not in data and "$bin" not in data
            else:  # (find(), not "in": see decode_event)
                plain = data.find(b"\\u") < 0 and data.find(b"$bin") < 0
            if plain:
                try:
                    return fast(data)
                except Exception:  # any refusal: the reference path decides and words it
                    pass
        return self._decode(data)

    def decode_event(self, data: bytes | str) -> Event | None:
        fast = self._fast_event
        if fast is None:
            return None
        # Only a message that opens with the event tag, and holds no escape and no "$"
        # (so no "$bin"): everything else takes the reference path. (bytes.find(), not
        # "in": on CPython 3.11 ``b"x" in data`` first tries the operand as an integer
        # and formats, then clears, a TypeError: ~2,000 instructions a test.)
        if isinstance(data, str):
            if not data.startswith('{"t":"event",') or "\\" in data or "$" in data:
                return None
        elif not data.startswith(b'{"t":"event",') or data.find(b"\\") >= 0 or data.find(b"$") >= 0:
            return None
        try:
            wire = fast(data)
        except Exception:  # any refusal: the reference path decides and words it
            return None
        s, e, i, d = wire.s, wire.e, wire.id, wire.d
        # The data model (anywire.core.values): a scalar is checked here (msgspec already
        # refused non-finite floats; keys are strings in JSON); a map or an array needs
        # the scan of the bytes (depth, long integers), and if suspect the reference path.
        kind = type(d)
        if kind is dict or kind is list:
            if self.suspect(data):
                return None
        elif kind is int and not INT_MIN <= d <= INT_MAX:
            return None
        if 0 <= s < UINT_LIMIT and 0 < len(e) <= MAX_NAME and (i is None or 0 <= i < UINT_LIMIT):
            return Event(s, e, d, i)
        return None

    def decode_rx(self, data: bytes | str) -> int | None:
        # Exactly {"t":"rx","n":N}, N a JSON integer without sign, fraction, exponent or
        # leading zero, below UINT_LIMIT (at most 16 digits): what json.dumps, JSON.stringify
        # and rx() write. Any other spelling, valid or not, takes the reference path.
        if type(data) is bytes:
            if len(data) > _RX_LONGEST or not data.startswith(_RX_OPEN) or data[-1] != 125:
                return None
            digits: bytes | str = data[_RX_DIGITS:-1]
        elif type(data) is str:
            if len(data) > _RX_LONGEST or not data.startswith(_RX_OPEN_TEXT) or data[-1] != "}":
                return None
            digits = data[_RX_DIGITS:-1]
            if not digits.isascii():
                return None  # (str.isdigit() takes any script's digits)
        else:
            return None
        if not digits.isdigit() or (len(digits) > 1 and digits[0] in _ZERO):
            return None
        n = int(digits)
        return n if n < UINT_LIMIT else None

    def _decode(self, data: bytes | str) -> Any:
        try:
            text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
            obj = self._decoder.decode(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RemoteProtocolError(f"malformed JSON: {exc}", CloseCode.BAD_REQUEST) from exc
        if _SURROGATE_ESCAPE.search(text) is not None:
            # An escape can spell a lone surrogate ("\ud800") that no UTF-8 encoder can
            # write back; only messages with such escapes pay for this check.
            try:
                self._encoder.encode(obj).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise RemoteProtocolError("malformed JSON: lone surrogate in a string") from exc
        return obj

    def encode_body(self, fields: dict[str, Any]) -> bytes:
        # "{...}" without its braces; an empty map gives b"".
        return self.encode(fields)[1:-1]

    def frame(self, type: str, seq: int, body: bytes) -> bytes:
        if body:
            return b'{"t":"%s","s":%d,%s}' % (type.encode(), seq, body)
        return b'{"t":"%s","s":%d}' % (type.encode(), seq)

    def splicer(self, type: str, body: bytes) -> Callable[[int], bytes]:
        # One %-template with the body in it (its own % doubled): ``template % seq`` is
        # one C call per recipient, without a Python frame.
        if body:
            template = b'{"t":"%s","s":%%d,' % type.encode() + body.replace(b"%", b"%%") + b"}"
        else:
            template = b'{"t":"%s","s":%%d}' % type.encode()
        return template.__mod__

    def batch(self, frames: Iterable[bytes]) -> bytes:
        return b"[" + b",".join(frames) + b"]"

    def rx(self, n: int) -> bytes:
        return b'{"t":"rx","n":%d}' % n

    def reply(self, receipt: int | None, seq: int, body: bytes) -> bytes:
        if not body:  # (never for an ack, which has an id; kept exact anyway)
            ack = self.frame("ack", seq, body)
            return ack if receipt is None else self.batch((self.rx(receipt), ack))
        if receipt is None:
            return b'{"t":"ack","s":%d,%s}' % (seq, body)
        return b'[{"t":"rx","n":%d},{"t":"ack","s":%d,%s}]' % (receipt, seq, body)


# MessagePack's prefilter (MsgpackCodec.suspect, and the encoder's check). A non-finite
# float64 is 0xcb then an exponent of all ones (7ff/fff); a float32 0xca then 7f8/ff8.
_NON_FINITE = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]|\xca[\x7f\xff][\x80-\xff]")
# Bytes that may open a map or an array: nesting needs one per level.
_MSGPACK_OPENERS = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])


def _non_finite(data: bytes) -> bool:
    """Whether MessagePack bytes may hold a NaN or an infinity (memchr first: floats are
    rare in messages)."""
    # (An int operand: ``0xCB in data`` is a bare memchr, ``b"\xcb" in data`` costs 9x.)
    return (0xCB in data or 0xCA in data) and _NON_FINITE.search(data) is not None


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    if n < 0x10000:
        return b"\xde" + struct.pack(">H", n)
    return b"\xdf" + struct.pack(">I", n)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


class MsgpackCodec:
    """MessagePack with the msgpack 1.x defaults: str keys, bin type for bytes, no ext types.

    ``packb`` and ``unpackb`` are msgpack's functions (injected: the core imports only the
    standard library). Decoding is bounded by ``max_size`` and rejects non-string map keys.
    """

    name = "msgpack"
    binary = True
    content_type = "application/msgpack"

    def __init__(
        self,
        packb: Callable[..., bytes],
        unpackb: Callable[..., Any],
        max_size: int = 16 * 1024 * 1024,
        max_depth: int | None = None,
    ) -> None:
        self._packb = packb
        self._unpackb = unpackb
        self._max_size = max_size
        self.max_depth = max_depth
        self._t_key = packb("t")
        self._s_key = packb("s")
        self._rx_head = _map_header(2) + packb("t") + packb("rx") + packb("n")

    def _pack(self, value: Any) -> bytes:
        try:
            out: bytes = self._packb(value, use_bin_type=True, default=_msgpack_default)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"cannot encode as MessagePack: {exc}") from exc
        # MessagePack itself carries NaN and infinities; the protocol does not (JSON
        # cannot). Only output holding such a bit pattern can be one.
        if (0xCB in out or 0xCA in out) and _NON_FINITE.search(out) is not None:  # inlined
            problem = value_error(value, None, keys=False)
            if problem is not None:
                raise TypeError(f"cannot encode as MessagePack: {problem}")
        return out

    def suspect(self, data: bytes | str) -> bool:
        if isinstance(data, str) or _non_finite(data):
            return True
        # A bin value (0xc4-0xc6) may be a binary map key, which msgpack's strict_map_key
        # lets through and the protocol does not.
        if 0xC4 in data or 0xC5 in data or 0xC6 in data:
            return True
        if self.max_depth is None:
            return False
        return len(data) - len(data.translate(None, _MSGPACK_OPENERS)) > self.max_depth

    def encode(self, obj: dict[str, Any]) -> bytes:
        return self._pack(obj)

    def decode_event(self, data: bytes | str) -> Event | None:
        return None  # no typed decoder: decode() and parse_frame() take every message

    def decode_rx(self, data: bytes | str) -> int | None:
        # The map {"t": "rx", "n": N} in rx()'s key order, its keys as fixstr, N an
        # unsigned integer in any of its encodings (positive fixint, uint 8/16/32/64)
        # and nothing after it. Anything else takes the reference path.
        head = self._rx_head
        if type(data) is not bytes or not data.startswith(head):
            return None
        at = len(head)
        rest = len(data) - at
        if rest < 1:
            return None
        kind = data[at]
        if kind < 0x80:
            return kind if rest == 1 else None
        size = _UINT_SIZES.get(kind)
        if size is None or rest != size + 1:
            return None
        n = int.from_bytes(data[at + 1 :], "big")
        return n if n < UINT_LIMIT else None

    def decode(self, data: bytes | str) -> Any:
        if isinstance(data, str):
            raise RemoteProtocolError("MessagePack frames must be binary")
        if len(data) > self._max_size:
            raise RemoteProtocolError("frame too large", CloseCode.MESSAGE_TOO_BIG)
        try:
            # The size is bounded above; unpackb() itself takes no buffer limit. Extension
            # types could not be relayed to JSON clients: refused, except the timestamp
            # extension, read as float seconds.
            return self._unpackb(
                data,
                raw=False,
                strict_map_key=True,
                use_list=True,
                timestamp=1,
                ext_hook=_refuse_ext,
            )
        except Exception as exc:  # msgpack raises many unrelated types on bad input
            raise RemoteProtocolError(f"malformed MessagePack: {exc}") from exc

    def encode_body(self, fields: dict[str, Any]) -> bytes:
        # Map entries without the header; the length is restored in frame() by re-counting,
        # so the body is prefixed with its entry count in one byte pair.
        # One pack of the whole map, its header cut off: a fraction of packing per key.
        packed = self._pack(fields)
        n = len(fields)
        header = 1 if n < 16 else 3 if n < 0x10000 else 5
        return struct.pack(">H", n) + packed[header:]

    def frame(self, type: str, seq: int, body: bytes) -> bytes:
        (count,) = struct.unpack_from(">H", body)
        return (
            _map_header(count + 2)
            + self._t_key
            + self._packb(type)
            + self._s_key
            + self._packb(seq)
            + body[2:]
        )

    def splicer(self, type: str, body: bytes) -> Callable[[int], bytes]:
        (count,) = struct.unpack_from(">H", body)
        head = _map_header(count + 2) + self._t_key + self._packb(type) + self._s_key
        tail = body[2:]
        packb = self._packb
        return lambda seq: head + packb(seq) + tail

    def batch(self, frames: Iterable[bytes]) -> bytes:
        items = list(frames)
        return _array_header(len(items)) + b"".join(items)

    def rx(self, n: int) -> bytes:
        return self._rx_head + self._packb(n)

    def reply(self, receipt: int | None, seq: int, body: bytes) -> bytes:
        ack = self.frame("ack", seq, body)
        return ack if receipt is None else self.batch((self.rx(receipt), ack))


# MessagePack's unsigned integer formats: the type byte and the bytes of the value after it.
_UINT_SIZES = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"MessagePack extension type {code} is not allowed")


def _msgpack_default(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    raise TypeError(f"{type(value).__name__} is not serializable")
