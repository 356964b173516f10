"""What a server wrote back on a raw WebSocket, read from websockets' parsed frames: the
acks and the close code (shared by the tests that drive the server's read of client
frames byte by byte)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from websockets.frames import Frame, Opcode


def acks(frames: Iterable[Frame]) -> list[Any]:
    """The ``d`` of every ack frame among ``frames``, in order (batches flattened)."""
    out = []
    for f in frames:
        if f.opcode is Opcode.TEXT:
            decoded = json.loads(f.data)
            for x in decoded if isinstance(decoded, list) else [decoded]:
                if x["t"] == "ack":
                    out.append(x["d"])
    return out


def close_code(frames: Iterable[Frame]) -> int | None:
    """The code of the first close frame among ``frames``; None if there is none."""
    for f in frames:
        if f.opcode is Opcode.CLOSE:
            return int.from_bytes(f.data[:2], "big")
    return None
