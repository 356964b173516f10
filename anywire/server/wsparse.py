"""Reading a client's WebSocket data frames without the ``websockets`` parser (issue #17).

The read side of :mod:`.wsframes`, sans-I/O: bytes in, messages out. ``websockets``
parses each frame in a chain of generators (a buffer, ``read_exact`` two to four times,
a ``Frame``, its checks, an event list); most frames a client sends are one whole text
or binary message in one masked frame, and :func:`read_messages` takes those out of a
read in a few byte lookups and one unmasking.

It takes only what needs no state of the connection's (RFC 6455 5.2): FIN set, RSV bits
0, opcode 1 (text) or 2 (binary), the mask bit set, a length within ``limit``, the whole
frame in the data. It stops at the first frame that is anything else (a control frame, a
fragment, an unmasked or oversized frame, a reserved opcode or bit, a frame not complete
yet) and says where: from that byte on the caller hands the data to ``websockets``, which
answers as it always does (1002, 1009, a pong, a close...). :func:`frame_size` tells
where a frame of any kind ends, so the caller can hand ``websockets`` one frame and go on
reading after it. Text is not checked for UTF-8 here: that is the caller's, as it was
uvicorn's (1007), once the message is whole.

The caller must use it only where ``websockets`` would do nothing but append the frame to
its events: its parser idle between frames, no fragmented message in progress, no
extension (permessage-deflate sets RSV1 and changes the payload), the connection open.
"""

from __future__ import annotations

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (websockets built without its C extension)
    from websockets.utils import apply_mask

__all__ = ["HEADER_MAX", "apply_mask", "frame_size", "read_messages"]

HEADER_MAX = 14  # 2 + 8 (64-bit length) + 4 (mask): the longest frame header
_TEXT = 0x81  # FIN, RSV 0, opcode 1
_BINARY = 0x82  # FIN, RSV 0, opcode 2

Message = tuple[bytes, bool]  # the payload, unmasked, and whether it is binary


def read_messages(data: bytes, start: int, limit: int | None) -> tuple[list[Message], int]:
    """The whole single-frame messages at ``data[start:]``, in order, and the offset of
    the first byte not taken (``len(data)`` when all were). ``limit``: the largest
    payload taken (``websockets``' max_size; None for no limit)."""
    messages: list[Message] = []
    end = len(data)
    i = start
    while i + 6 <= end:  # the smallest masked frame: 2 + 4 bytes
        head = data[i]
        if head != _TEXT and head != _BINARY:
            break
        length = data[i + 1]
        if length < 0x80:  # not masked: websockets' "incorrect masking" (1002)
            break
        length -= 0x80
        if length < 126:
            p = i + 2
        elif length == 126:
            p = i + 4
            length = (data[i + 2] << 8) | data[i + 3]
        else:
            p = i + 10
            if p > end:
                break
            length = int.from_bytes(data[i + 2 : p], "big")
        if limit is not None and length > limit:
            break
        q = p + 4 + length
        if q > end:
            break
        messages.append((apply_mask(data[p + 4 : q], data[p : p + 4]), head == _BINARY))
        i = q
    return messages, i


def frame_size(data: bytes | bytearray, start: int) -> int:
    """The size of the frame at ``data[start:]`` (any opcode, masked or not), header
    included, as its header declares it; -1 while the header is incomplete."""
    have = len(data) - start
    if have < 2:
        return -1
    second = data[start + 1]
    length = second & 0x7F
    header = 2
    if length == 126:
        header = 4
        if have < header:
            return -1
        length = (data[start + 2] << 8) | data[start + 3]
    elif length == 127:
        header = 10
        if have < header:
            return -1
        length = int.from_bytes(data[start + 2 : start + 10], "big")
    if second & 0x80:
        header += 4
    return header + length
