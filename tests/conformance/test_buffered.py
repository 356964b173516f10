"""The kit's stand-in for a buffering proxy (``sse_buffered``): the status and headers
pass at once, the body is held back until the limit or the response's end."""

from __future__ import annotations

import asyncio
from typing import Any

from anywire.conformance.kit import _Buffered


def _sent() -> tuple[list[dict[str, Any]], Any]:
    out: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    return out, send


def _body(chunk: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": chunk, "more_body": more}


def test_the_body_is_held_until_the_limit() -> None:
    out, send = _sent()
    buffered = _Buffered(send, 10)

    async def go() -> None:
        await buffered({"type": "http.response.start", "status": 200, "headers": []})
        await buffered(_body(b": padding\n"[:4]))  # 4 bytes: held
        await buffered(_body(b"data: 1\n\n"))  # 13 in all: passed on, in one piece
        await buffered(_body(b"x"))  # held again

    asyncio.run(go())
    assert [m["type"] for m in out] == ["http.response.start", "http.response.body"]
    assert out[1] == _body(b": pa" + b"data: 1\n\n")


def test_the_end_of_the_body_flushes_what_was_held() -> None:
    out, send = _sent()
    buffered = _Buffered(send, 65536)

    async def go() -> None:
        await buffered({"type": "http.response.start", "status": 200, "headers": []})
        await buffered(_body(b"data: hello\n\n"))
        assert len(out) == 1  # only the start: the hello is held back
        await buffered(_body(b"", more=False))

    asyncio.run(go())
    assert out[-1] == _body(b"data: hello\n\n", more=False)
