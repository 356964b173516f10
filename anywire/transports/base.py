"""What every transport shares: the Host protocol, the Link object and ASGI helpers.

A :class:`Link` is one live transport connection of a session. The host pushes frames into
the session and calls :meth:`Link.wake`; the transport's writer then drains
:meth:`Host.outgoing` and writes the bytes. So every transport has the same shape: a reader
that feeds frames in, a writer that flushes bytes out, nothing clever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from ..core.closecodes import CloseCode
from ..core.codec import Codec
from ..core.errors import ProtocolError, RemoteProtocolError
from ..core.flood import FloodError
from ..core.frames import UINT_LIMIT, Connect, Frame, Resume, ResumeDirect, parse_frame
from ..core.settings import Settings
from .traffic import Traffic

__all__ = [
    "FLOOD_HOLD",
    "LINK_QUEUE_BYTES",
    "LINK_QUEUE_FRAMES",
    "MESSAGE_BYTES",
    "ASGIApp",
    "Host",
    "Link",
    "Receive",
    "Scope",
    "Send",
    "TransportInfo",
    "byte_length",
    "decode_frames",
    "decode_general",
    "first_frame",
    "header",
    "log_refused",
    "peer_of",
    "query",
    "query_uint",
    "read_body",
    "refuse_origin",
    "send_json_error",
    "session_sid",
    "short_reason",
    "status_for",
]

log = logging.getLogger("anywire")

FLOOD_HOLD = 1.0
"""Longest time (seconds) a flood refusal (HTTP 429) is held before it is answered."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LINK_QUEUE_FRAMES = 64
"""Most frames a :class:`Link` queues ahead of the session's (hello, error frames)."""
LINK_QUEUE_BYTES = 256 * 1024
"""Most bytes a :class:`Link` queues ahead of the session's frames."""
MESSAGE_BYTES = 64 * 1024
"""Most bytes of sequenced frames a streaming writer (WebSocket, SSE) takes for one
message (at least one frame): what a socket that stopped draining holds of a message
stays bounded, and the rest follows at once. A long-poll response is not cut (each
message costs the client a round trip); the outbox budget bounds it."""


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """A transport described by data, so clients and the host branch on capabilities.

    ``bidirectional``: frames flow both ways on the connection (else upstream is POST);
    ``server_ping``: the server sends pings (else each request is the heartbeat);
    ``binary``: binary codecs are possible.
    """

    name: str
    bidirectional: bool
    server_ping: bool
    binary: bool


_UNCOUNTED = Traffic()  # the counters of links made outside a transport (tests, tools)


class Link:
    """One live transport connection of a session."""

    __slots__ = (
        "_flag", "_waiters", "closing", "codec", "due", "hold", "info", "interval", "more",
        "on_wake", "peer", "queued", "sid", "traffic",
    )  # fmt: skip

    def __init__(
        self,
        info: TransportInfo,
        codec: Codec,
        traffic: Traffic | None = None,
        peer: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.info = info
        self.codec = codec
        self.traffic = _UNCOUNTED if traffic is None else traffic
        """The counters of the transport this link belongs to (frames and bytes)."""
        self.peer = peer
        """``(origin, ip)`` of the request that opened the connection (for observers)."""
        self.sid: str | None = None
        self.closing: tuple[int, str] | None = None
        self.queued: list[bytes] = []  # encoded frames written before anything else
        # Longest hold of a poll on this link (long-poll; None: the server's poll_window),
        # shorter when its negotiate was granted a shorter heartbeat.
        self.hold: float | None = None
        # The heartbeat interval its negotiate was granted (None: the server's
        # ping_interval); SSE paces its comment keepalives by it (battery profile).
        self.interval: float | None = None
        # A flag and bare futures instead of an asyncio.Event: an idle connection then
        # holds one future, not an Event with its deque (memory per connection).
        self._flag = False
        self._waiters: list[asyncio.Future[None]] | None = None
        # Called on every wake-up: a transport that writes on demand (WebSocket) starts
        # its writer here instead of keeping a task parked in wait().
        self.on_wake: Callable[[], None] | None = None
        # Set by every Host.outgoing(): it left sequenced frames for a later call (its
        # limits). Read at once after it, this is has_pending() without its three calls
        # (a writer's check after every write: docs/perf/frames.md).
        self.more = False
        # Set by a writer while a flush of its is due that takes whatever is pushed until
        # then (a batched WebSocket write): a push need not wake the link (the host's
        # fan-out skips wake() then: two calls per delivery of a busy room).
        self.due = False

    def push(self, frame: bytes) -> None:
        """Queue an already-encoded frame (hello, error) ahead of the session's frames.

        The queue is bounded (:data:`LINK_QUEUE_FRAMES` frames, :data:`LINK_QUEUE_BYTES`
        bytes): a peer that keeps sending bad frames without reading the answers is a
        slow consumer, closed with 4002 (its session stays resumable), and the frame
        that did not fit is dropped."""
        queued = self.queued
        if len(queued) >= LINK_QUEUE_FRAMES or len(frame) + sum(map(len, queued)) > (
            LINK_QUEUE_BYTES
        ):
            self.close(CloseCode.SLOW_CONSUMER, "client too slow: send queue full")
            return
        queued.append(frame)
        self.wake()

    def wake(self) -> None:
        """Frames are waiting: the writer should drain :meth:`Host.outgoing`."""
        self._flag = True
        if self.on_wake is not None:
            self.on_wake()
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def close(self, code: int, reason: str) -> None:
        """Ask the transport to send a close frame and end the connection."""
        if self.closing is None:
            self.closing = (code, short_reason(reason))
        self.wake()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until woken (True) or ``timeout`` passes (False)."""
        if not self._flag:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(fut)
            try:
                if timeout is None:
                    await fut
                else:
                    async with asyncio.timeout(timeout):
                        await fut
            except TimeoutError:
                return False
            finally:
                if self._waiters is not None and fut in self._waiters:
                    self._waiters.remove(fut)
        self._flag = False
        return True


class Host(Protocol):
    """The session host as transports see it (implemented by anywire.server)."""

    settings: Settings

    def codec(self, name: str) -> Codec:
        """The codec called ``name`` (``json`` or ``msgpack``)."""
        ...

    def check_origin(self, scope: Scope) -> bool:
        """Whether the request's Origin header (if any) is allowed."""
        ...

    def cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """CORS response headers for an allowed cross-origin request (else empty)."""
        ...

    def ticket_codec(self, ticket: str) -> str:
        """The codec a ticket was negotiated with (raises AuthError if invalid)."""
        ...

    async def attach(self, link: Link, first: Connect | Resume) -> None:
        """Redeem the ticket in ``first`` and bind ``link`` to its session. The hello and any
        replay become available from :meth:`outgoing`. Raises ProtocolError (AuthError)."""
        ...

    async def resume_direct(self, scope: Scope, link: Link, first: ResumeDirect) -> None:
        """Bind ``link`` to the session ``first`` names, as a resume through negotiate
        would, with no ticket (a WebSocket's first frame). Raises ProtocolError with the
        close code of a refusal (4007: negotiate)."""
        ...

    def resolve(self, token: str) -> str:
        """The session id named by a session token; raises ProtocolError if unknown."""
        ...

    def feed(self, sid: str, frames: list[Frame], size: int = 0) -> None:
        """Frames from the client (``size``: the bytes of the request that carried them,
        when the caller does not count them itself: ``POST /send``). Raises
        RemoteProtocolError (frames before the bad one were processed)."""
        ...

    def receipt(self, sid: str, n: int, size: int = 0) -> None:
        """One client message that is exactly the frame ``Rx(n)`` (``Codec.decode_rx``):
        what :meth:`feed` does with it, without the frame. Raises like :meth:`feed`."""
        ...

    async def settled(self, sid: str) -> None:
        """Wait until what the frames fed so far for ``sid`` caused has left this node
        where it must (a call's answer on its way to its caller's node; bounded): what
        a 204 to ``POST /send`` vouches for, since the client then forgets them."""
        ...

    def answer(self, link: Link, frame: Frame) -> bytes | None:
        """Handle one client frame whose whole answer can be written at once (an event
        with an ack id, handled inline): returns that message, ``b""`` if the frame was
        handled but its outcome waits in the session for :meth:`outgoing`, or None if it
        was not handled (feed it). Raises RemoteProtocolError like :meth:`feed`."""
        ...

    def outgoing(self, link: Link, limit: int | None = None) -> list[bytes]:
        """Encoded frames to write on ``link`` now: hello first, then control, then
        sequenced frames, then the close frame if the link is closing. Sets
        ``link.more``: whether sequenced frames were left for a later call (``limit`` or
        the byte cap reached); right after this call, ``has_pending(link)`` is
        ``link.more or link.closing is not None``."""
        ...

    def reject(self, sid: str, error: RemoteProtocolError) -> None:
        """An invalid client frame: count it as consumed if it had a sequence number and
        answer its ack id with an error, so the frames after it still flow."""
        ...

    def has_pending(self, link: Link) -> bool:
        """Whether :meth:`outgoing` would return anything (non-destructive)."""
        ...

    def poll_started(self, sid: str, ack: int | None) -> Link:
        """A long-poll request arrived: charge it to the flood budget, apply its ``ack``
        and return the session's link."""
        ...

    def charge(self, sid: str, cost: int = 1, what: str = "frames") -> None:
        """Spend ``cost`` of the session's flood budget (0: only check it is not spent);
        raises FloodError (4008)."""
        ...

    async def stranger(self, scope: Scope) -> None:
        """The request named no live session (4007): charge its address's flood budget,
        and return once the refusal may be sent (held while that budget is spent)."""
        ...

    def detach(self, link: Link) -> None:
        """The connection behind ``link`` ended."""
        ...


def byte_length(data: bytes | str) -> int:
    """Size of a message on the wire (text is measured in UTF-8 bytes)."""
    if isinstance(data, bytes):
        return len(data)
    return len(data) if data.isascii() else len(data.encode())


def decode_frames(
    codec: Codec, data: bytes | str, max_batch: int
) -> tuple[list[Frame], RemoteProtocolError | None]:
    """Decode one frame or a batch.

    Returns the valid frames up to the first invalid one, and the error for that one (or
    None), so the frames before a bad one are still processed and nothing is lost.
    A body that cannot be decoded at all, or an oversized batch, yields no frames.
    """
    event = codec.decode_event(data)
    if event is not None:  # one event, the commonest message (decoded in C)
        return [event], None
    return decode_general(codec, data, max_batch)


def decode_general(
    codec: Codec, data: bytes | str, max_batch: int
) -> tuple[list[Frame], RemoteProtocolError | None]:
    """:func:`decode_frames` without the typed event decoder, for a caller that has
    tried ``codec.decode_event()`` already (so a message it declined is not tried
    twice)."""
    try:
        obj = codec.decode(data)
    except RemoteProtocolError as exc:
        return [], exc
    # Values outside the shared data model (a 2^64 from JSON, a NaN from MessagePack)
    # or too deep are refused frame by frame, like any invalid field: the frames before
    # still count, the bad one still uses up its sequence number and is answered.
    check = codec.suspect(data)
    depth = codec.max_depth
    if not isinstance(obj, list):  # one frame, the common case
        try:
            return [parse_frame(obj, check, depth)], None
        except RemoteProtocolError as exc:
            return [], exc
    items = obj
    if len(items) > max_batch:
        return [], RemoteProtocolError(f"batch of {len(items)} frames exceeds {max_batch}", 4503)
    frames: list[Frame] = []
    for item in items:
        try:
            frames.append(parse_frame(item, check, depth))
        except RemoteProtocolError as exc:
            return frames, exc
    return frames, None


def header(scope: Scope, name: bytes) -> str | None:
    """A request header by lower-case name, decoded as latin-1."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def peer_of(scope: Scope) -> tuple[str | None, str | None]:
    """``(origin, ip)`` of a request, as observers are told them (never a credential)."""
    client = scope.get("client")
    return header(scope, b"origin"), (str(client[0]) if client else None)


def query(scope: Scope, blanks: bool = False) -> dict[str, str]:
    """The query string as a flat dict (last value wins); ``blanks`` keeps parameters
    given empty (``?room=``), for a caller that must tell them from absent ones."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=blanks).items()}


async def send_json_error(
    send: Send,
    status: int,
    error: ProtocolError | None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer an HTTP request with ``status`` and a JSON error body naming the close code.

    A flood refusal (429) carries ``Retry-After`` and is held up to :data:`FLOOD_HOLD`
    seconds first (never past its Retry-After): a client that ignores Retry-After and
    asks again at once can then make this connection refuse it about once a second,
    not thousands of times (holding a request costs a sleeping coroutine)."""
    body = b""
    if error is not None:
        name = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            410: "gone",
            413: "too_large",
            429: "flood",
        }.get(status, "error")
        body = json.dumps({"error": name, "code": error.code, "message": error.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if isinstance(error, FloodError):
        headers.append((b"retry-after", error.retry_after_header()))
        # (Browsers hide response headers from cross-origin callers unless exposed.)
        headers.append((b"access-control-expose-headers", b"Retry-After"))
        await asyncio.sleep(min(error.retry_after, FLOOD_HOLD))
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int, truncate: bool = False) -> bytes:
    """Read an HTTP request body, raising RemoteProtocolError (4503) past ``limit`` bytes;
    with ``truncate``, read it all but keep only the first ``limit`` bytes instead."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        if size + len(chunk) > limit:
            if not truncate:
                raise RemoteProtocolError(f"body larger than {limit} bytes", 4503)
            chunk = chunk[: max(0, limit - size)]
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_STATUS = {4007: 410, 4008: 429, 4501: 401, 4502: 400, 4503: 413, 4505: 403, 4507: 404}


def status_for(code: int) -> int:
    """The HTTP status that carries close code ``code`` on the HTTP transports."""
    return _STATUS.get(code, 400 if code >= 4500 else 503)


def short_reason(reason: str) -> str:
    """A close reason cut to 120 bytes of UTF-8 on a character boundary (a WebSocket close
    reason may hold 123 bytes; every transport keeps the same limit)."""
    return reason.encode()[:120].decode(errors="ignore")


def query_uint(params: dict[str, str], name: str) -> int | None:
    """The integer query parameter ``name`` (ASCII digits only, below 2^53, like every
    protocol integer), None if absent."""
    if name not in params:
        return None
    text = params[name]
    # Not int(): it also takes spaces, "+", "_" and non-ASCII digits, and any length.
    if not (0 < len(text) <= 16 and text.isascii() and text.isdigit()) or (
        int(text) >= UINT_LIMIT
    ):
        raise RemoteProtocolError(f"{name} must be an integer from 0 to 2^53-1")
    return int(text)


def log_refused(where: str, exc: ProtocolError, scope: Scope | None = None) -> None:
    """One log line, no traceback, for a client input refused as invalid (a
    RemoteProtocolError other than a flood): what, from whom, the code and the reason
    (quoted: it may hold what the client sent)."""
    if not isinstance(exc, RemoteProtocolError) or exc.code == CloseCode.FLOOD:
        return
    client = scope.get("client") if scope is not None else None
    peer = f"{client[0]}:{client[1]}" if client else "unknown peer"
    log.warning("anywire: refused %s from %s: %d %.200r", where, peer, exc.code, exc.message)


def first_frame(params: dict[str, str]) -> Connect | Resume:
    """The connect or resume frame an HTTP transport's opening request stands for
    (``?ticket=T`` or ``?ticket=T&last=N``)."""
    ticket = params.get("ticket")
    if not ticket:
        raise RemoteProtocolError("missing ticket")
    last = query_uint(params, "last")
    return Connect(ticket) if last is None else Resume(ticket, last)


def session_sid(host: Host, scope: Scope) -> str:
    """The session a follow-up HTTP request names (``X-Anywire-Token`` header or ``token``
    query parameter); raises ProtocolError (4007) if missing or unknown."""
    token = header(scope, b"x-anywire-token") or query(scope).get("token")
    if not token:
        raise ProtocolError("missing session token", CloseCode.SESSION_UNKNOWN)
    return host.resolve(token)


async def refuse_origin(host: Host, scope: Scope, send: Send) -> bool:
    """Answer 403 (4505) when the request's Origin is not allowed; True if it did."""
    if host.check_origin(scope):
        return False
    await send_json_error(send, 403, ProtocolError("origin not allowed", CloseCode.FORBIDDEN))
    return True
