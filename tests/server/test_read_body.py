"""read_body: the one loop that reads an HTTP request body (transports and forwarding)."""

from __future__ import annotations

from typing import Any

import pytest

from anywire.core.errors import RemoteProtocolError
from anywire.transports.base import Receive, read_body


def _receive(chunks: list[bytes], disconnect: bool = False) -> Receive:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if disconnect:
        messages[-1]["more_body"] = True
        messages.append({"type": "http.disconnect"})
    it = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(it)

    return receive


async def test_a_body_within_the_limit_is_read_whole() -> None:
    assert await read_body(_receive([b"abc", b"def"]), 6) == b"abcdef"


async def test_a_body_over_the_limit_is_refused_with_4503() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        await read_body(_receive([b"abc", b"def"]), 5)
    assert info.value.code == 4503


async def test_truncate_reads_everything_and_keeps_the_first_bytes() -> None:
    inner = _receive([b"abc", b"def", b"ghi"])
    calls = 0

    async def receive() -> Any:
        nonlocal calls
        calls += 1
        return await inner()

    assert await read_body(receive, 4, truncate=True) == b"abcd"
    assert calls == 3  # every message was consumed


async def test_a_client_that_goes_away_is_reported() -> None:
    with pytest.raises(ConnectionResetError):
        await read_body(_receive([b"abc"], disconnect=True), 10, truncate=True)
