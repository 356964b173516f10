"""Negotiates nobody waits for any more: shed by the age of the work, at the socket.

When a reconnect storm overflows a node, the connections queue in the kernel (the accept
queue, then the socket's receive buffer) before the event loop sees them, and the loop's
own lateness does not show that queue. A negotiate whose request bytes waited there
longer than a client waits for its answer (the Python client's ``connect_timeout``,
5 s) was given up: answering it costs the node a negotiate (JSON, a credential, two
signatures, a ticket and its admission slot) that nobody reads, while the crowd behind
it waits longer still (docs/perf/storm.md: at 10,000 clients every attempt timed out,
half of them with the request sent and not yet answered).

The age is the kernel's: ``TCP_INFO``'s ``tcpi_last_data_recv``, the milliseconds since
the last segment arrived, read once when the first bytes of a connection are handed to
the protocol (Linux; elsewhere nothing is shed). Such a negotiate is answered at once,
before the request is parsed, with a canned ``503 busy`` (code 4000, a ``Retry-After``
spread over 1..10 s, ``Connection: close``): the client, if it is still there, waits and
comes back, and the node told its listeners it is behind (its resume windows stand
still: core/stall.py). Off with the rest of load shedding (``shed_lag`` 0). Only
negotiates: a WebSocket upgrade, an SSE stream or a poll
carries a ticket or a session the node already paid for.

Work for clients that have gone is not done at all: a WebSocket upgrade whose client had
already closed its side when the server first read it (it could never send its connect
frame) or reset it, and a negotiate whose client did so after its request waited
:data:`GONE_AFTER`, are closed unanswered before they are parsed. In a reconnect storm
these are attempts their clients gave up; serving one cost the node 160-280 us of CPU,
closing it about 50 us (``bench/gone_cost.py``, best rounds). Storms see few of them:
most given-up attempts never complete their TCP handshake (docs/perf/storm-round3.md).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

from ..core.closecodes import CloseCode

__all__ = ["GONE", "GONE_AFTER", "STALE_AFTER", "Stale", "stale", "tcp_info"]

STALE_AFTER = 5.0
"""Seconds a negotiate's request may have waited in the kernel before it is shed."""

_STATE = 0  # offset of tcpi_state (u8) in struct tcp_info
_LAST_DATA_RECV = 52  # offset of tcpi_last_data_recv (u32, ms) in struct tcp_info
_CLOSE = 7  # tcpi_state TCP_CLOSE: the client reset the connection
_CLOSE_WAIT = 8  # tcpi_state TCP_CLOSE_WAIT: the client's FIN came (it closed its side)
_TCP_INFO = getattr(socket, "TCP_INFO", None) if sys.platform.startswith("linux") else None
_NEGOTIATE = b"/negotiate"
_WEBSOCKET = b"websocket"
GONE = b""
"""What :func:`stale` returns for a connection whose client has gone: close it, unanswered."""
GONE_AFTER = 0.2
"""Seconds a negotiate must have waited in the kernel before its client's FIN counts as
the client having gone (a client that half-closes at once and reads on is served)."""


class Stale:
    """What was shed, and who is told (the node's load shedding registers itself)."""

    shed = 0
    """Negotiates answered 503 for their age, in this process."""
    gone = 0
    """Negotiates and WebSocket upgrades dropped unparsed: their client had already closed
    the connection (it gave the attempt up), in this process."""
    listeners: list[Callable[[float], None]] = []  # process-wide, on purpose
    """Called with the age (seconds) of each negotiate shed."""


def tcp_info(transport: Any) -> tuple[int, float] | None:
    """The connection's TCP state (``tcpi_state``) and the seconds since its last segment
    arrived (None: not known here)."""
    if _TCP_INFO is None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
    except (OSError, AttributeError):
        return None
    if len(raw) < _LAST_DATA_RECV + 4:
        return None
    state = raw[_STATE]
    return state, float(struct.unpack_from("I", raw, _LAST_DATA_RECV)[0]) / 1000.0


def stale(first: bytes, transport: Any) -> bytes | None:
    """What to do with a connection whose first bytes are ``first``, before they are
    parsed: None to serve it; :data:`GONE` (empty) to close it unanswered, when it is a
    WebSocket upgrade whose client has already closed its side or reset it, or a
    negotiate whose client reset it or closed its side after it waited
    :data:`GONE_AFTER` (the client gave the attempt up while the request waited in the
    kernel: nobody will read an answer); the canned 503 to answer a negotiate that waited
    :data:`STALE_AFTER` seconds or more. Nothing is shed while no node of this process
    sheds load (``shed_lag`` 0: no listener)."""
    if not Stale.listeners:
        return None
    end = first.find(b"\r\n")
    line = first[:end] if end >= 0 else first[:2048]
    if line.startswith(b"POST ") and _NEGOTIATE in line:
        negotiate = True
    elif line.startswith(b"GET ") and _WEBSOCKET in first[:4096].lower():
        negotiate = False  # an upgrade (a GET that names websocket: checked, not trusted)
    else:
        return None
    info = tcp_info(transport)
    if info is None:
        return None
    state, age = info
    if state == _CLOSE or (state == _CLOSE_WAIT and (not negotiate or age >= GONE_AFTER)):
        # The client reset the connection, or closed its side: an upgrade needs both
        # directions (it could not send its connect frame), and a negotiate that waited
        # has been given up (HTTP clients do not half-close while they wait; one that
        # does and whose request waited GONE_AFTER gets no answer, like nginx's 499).
        Stale.gone += 1
        return GONE
    if not negotiate or age < STALE_AFTER:
        return None
    Stale.shed += 1
    for listener in Stale.listeners:
        listener(age)
    retry = random.randint(1, 10)  # a spread, not a secret
    body = json.dumps(
        {
            "error": "busy",
            "code": int(CloseCode.SHUTDOWN),
            "message": "server overloaded: try later",
            "retry_after": retry,
        }
    ).encode()
    return b"".join(
        [
            b"HTTP/1.1 503 Service Unavailable\r\n",
            b"content-type: application/json\r\n",
            b"cache-control: no-store\r\n",
            b"retry-after: %d\r\n" % retry,
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )
