"""The server's own WebSocket framing (anywire.server.wsframes): byte for byte what the
``websockets`` protocol writes for the same message, at every length boundary of RFC
6455's three header forms. tests/e2e/test_ws_frames.py checks it on the wire."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from anywire.server.wsframes import HEADERS, HEADERS_BELOW, server_frame

SIZES = [0, 1, 125, 126, 127, 2047, 2048, 65535, 65536, 70001]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("size", SIZES)
def test_same_bytes_as_websockets(size: int, binary: bool) -> None:
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    theirs = Frame(opcode, data).serialize(mask=False)
    assert server_frame(data, binary) == theirs
    header = {True: 2, False: 4 if size < 65536 else 10}[size < 126]
    assert len(theirs) == header + size  # the three forms are all covered


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_every_looked_up_header_is_websockets_header(binary: bool) -> None:
    # The table the direct write indexes (HEADERS), at every length it holds.
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    assert len(HEADERS[binary]) == HEADERS_BELOW
    for size in range(HEADERS_BELOW):
        data = b"x" * size
        assert HEADERS[binary][size] + data == Frame(opcode, data).serialize(mask=False)
