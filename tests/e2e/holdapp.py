"""The server of tests/e2e/test_restart_receipts.py: the browser tests' app (its ``log``
handler records to ``AW_RECORD_FILE``, which outlives the process) with one hold. A
``POST /anywire/send`` whose body holds :data:`MARK` is read whole, then held before it
is processed until ``POST /hold/release`` (at most :data:`HOLD_LIMIT` seconds);
``GET /hold/held`` answers once such a POST is held, ``GET /hold/answered`` with the
HTTP status the server gave it once it was answered (each within :data:`HOLD_LIMIT`).
The hold lets the test have that POST arrive after the server's graceful 4000 has
reached the client. Only with ``AW_HOLD=1``: the server started
after it holds nothing (a client that sends the frame again is served)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from tests.browser.app import app as inner
from tests.e2e.testapp import aw

MARK = b"held-by-the-server"
HOLD_LIMIT = 30.0  # seconds: no hold outlives a test
HOLD = os.environ.get("AW_HOLD") == "1"

_held = asyncio.Event()
_release = asyncio.Event()
_answered: asyncio.Future[int] | None = None  # the held POST's status


async def _answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Any, receive: Any, send: Any) -> None:
    path = scope.get("path") if scope["type"] == "http" else None
    if path == "/hold/held":
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_LIMIT):
                await _held.wait()
        await _answer(send, b"held" if _held.is_set() else b"nothing held")
        return
    if path == "/hold/answered":
        status = "not answered"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_LIMIT):
                status = str(await _answer_of_held())
        await _answer(send, status.encode())
        return
    if path == "/hold/release":
        _release.set()
        await _answer(send, b"released")
        return
    if path != "/anywire/send":
        await inner(scope, receive, send)
        return
    messages = [await receive()]
    while messages[-1].get("more_body"):
        messages.append(await receive())
    held = HOLD and not _release.is_set() and any(MARK in m.get("body", b"") for m in messages)
    if held:
        _held.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_LIMIT):
                await _release.wait()

    async def replay() -> Any:
        return messages.pop(0) if messages else await receive()

    async def told(message: Any) -> None:
        if held and message["type"] == "http.response.start":
            answered = _answer_of_held()
            if not answered.done():
                answered.set_result(int(message["status"]))
        await send(message)

    await inner(scope, replay, told)


def _answer_of_held() -> asyncio.Future[int]:
    global _answered
    if _answered is None:
        _answered = asyncio.get_running_loop().create_future()
    return _answered


app.anywire = aw  # type: ignore[attr-defined]  # the CLI's graceful drain
