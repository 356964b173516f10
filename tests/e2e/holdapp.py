"""The server of tests/e2e/test_restart_receipts.py: the browser tests' app (its ``log``
handler records to ``AW_RECORD_FILE``, which outlives the process) with one hold. A
``POST /anywire/send`` whose body holds :data:`MARK` is read whole, then held before it
is processed until ``POST /hold/release`` (at most :data:`HOLD_LIMIT` seconds);
``GET /hold/held`` answers once such a POST is held, ``GET /hold/answered`` with the
HTTP status the server gave it once it was answered (each within :data:`HOLD_LIMIT`).
The hold lets the test have that POST arrive after the server's graceful 4000 has
reached the client.

For a stream lost without a drain (tests/e2e/test_late_post_receipt.py): ``POST
/hold/shut`` has every negotiate answered 503 (busy, ``Retry-After: 1``) until ``POST
/hold/open``, so the client stays out; ``POST /hold/cut`` ends the downstream of every
session with 4001 (as a lost heartbeat does: the session waits for its resume);
``POST /hold/expire`` forgets every session (its resume window over). Only with
``AW_HOLD=1``: the server started after it holds nothing (a client that sends the frame
again is served)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from tests.browser.app import app as inner
from tests.e2e.testapp import aw

MARK = b"held-by-the-server"
HOLD_LIMIT = 30.0  # seconds: no hold outlives a test
HOLD = os.environ.get("AW_HOLD") == "1"

_held = asyncio.Event()
_release = asyncio.Event()
_answered: asyncio.Future[int] | None = None  # the held POST's status
_shut = False  # negotiates answered 503 (busy)


def recorded(record: Path) -> list[object]:
    """The data of every ``log`` event the app recorded in ``record``, in order."""
    lines = record.read_text().splitlines() if record.exists() else []
    return [json.loads(line)["data"] for line in lines]


def hold_env(record: Path) -> dict[str, str]:
    """The server's environment: it records to ``record``, holds the marked POST, and
    pings 30 s apart (no heartbeat waits behind the held POST and ends the session)."""
    return {"AW_RECORD_FILE": str(record), "AW_PING_INTERVAL": "30", "AW_PING_TIMEOUT": "30",
            "AW_HOLD": "1"}  # fmt: skip


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
    if path in _CONTROLS:
        _CONTROLS[path]()
        await _answer(send, b"done")
        return
    if path == "/anywire/negotiate" and _shut:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"code":4000,"error":"busy"}'})
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


def _set_shut(value: bool) -> None:
    global _shut
    _shut = value


def _cut() -> None:
    from anywire.core.closecodes import CloseCode
    from anywire.transports.base import Link

    for sess in list(aw.host.sessions.values()):
        if isinstance(sess.connection, Link):
            sess.connection.close(CloseCode.PING_TIMEOUT, "cut by the test")


def _expire() -> None:
    for sess in list(aw.host.sessions.values()):
        aw.host._expire(sess, run_hooks=True, end="expired")


_CONTROLS = {
    "/hold/shut": lambda: _set_shut(True),
    "/hold/open": lambda: _set_shut(False),
    "/hold/cut": _cut,
    "/hold/expire": _expire,
}
