"""RFC 6455 data frames as a server writes them, built here instead of by ``websockets``.

A server's frame is not masked (RFC 6455 section 5.1), so a whole text or binary message
in one frame is a 2, 4 or 10 byte header and the payload as it is (section 5.2). The
``websockets`` protocol builds the same bytes through ``send_text``, a ``Frame`` object,
``serialize`` (its checks, a ``BytesIO``, ``struct.pack``), a list of pending writes and
a ``b"".join``: per delivery that was a few thousand instructions of a ~40k budget
(docs/perf/frames.md). :func:`server_frame` is only for what needs none of that: no
extension negotiated (permessage-deflate compresses the payload and sets RSV1), the
connection open, no fragmented message under way; :mod:`.wsprotocol` checks those and
leaves every other case to ``websockets``.
"""

from __future__ import annotations

import struct

__all__ = ["HEADERS", "HEADERS_BELOW", "server_frame"]

_FIN_TEXT = 0x81  # FIN and opcode 1
_FIN_BINARY = 0x82  # FIN and opcode 2
_MEDIUM = struct.Struct("!BBH").pack  # 126, then a 16-bit length
_LONG = struct.Struct("!BBQ").pack  # 127, then a 64-bit length

HEADERS_BELOW = 2048
"""Payload lengths below this have their header in :data:`HEADERS`."""


def _header(opcode: int, length: int) -> bytes:
    return bytes((opcode, length)) if length < 126 else _MEDIUM(opcode, 126, length)


# Looked up, not packed: a batch of a few events (a few hundred bytes) is the usual
# message of a busy room, and struct's pack plus the call cost ~550 instructions per
# write (callgrind, docs/perf/fanout-round2.md). 2 x 2048 headers: ~184 KB per process.
HEADERS = (
    tuple(_header(_FIN_TEXT, n) for n in range(HEADERS_BELOW)),
    tuple(_header(_FIN_BINARY, n) for n in range(HEADERS_BELOW)),
)
"""``HEADERS[binary][n]``: the header of a final frame of ``n`` < :data:`HEADERS_BELOW`
bytes (what :func:`server_frame` puts before such a payload; a caller on the hot path
looks it up itself, without the call)."""


def server_frame(data: bytes, binary: bool) -> bytes:
    """``data`` as one unmasked, final text (UTF-8, not checked) or binary frame: the
    bytes ``websockets`` would write for it with no extension negotiated."""
    length = len(data)
    if length < HEADERS_BELOW:
        return HEADERS[binary][length] + data
    opcode = _FIN_BINARY if binary else _FIN_TEXT
    if length < 65536:
        return _MEDIUM(opcode, 126, length) + data
    return _LONG(opcode, 127, length) + data
