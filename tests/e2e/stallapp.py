"""The server of tests/e2e/test_stall.py: the bench app (room ``bench`` joined in the
connect hook, ``POST /ctl/pace`` publishing numbered events) with a short resume window
and short heartbeats, load shedding at 0.1 s of lateness, and ``POST /ctl/overload?secs=S``,
which overloads the node for real: its event loop is blocked 0.25 s at a time, with
10 ms of air between, for S seconds. ``ANYWIRE_TEST_STRETCH`` sets ``resume_stretch``
(1: the window is never stretched, the control)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from urllib.parse import parse_qs

from anywire.bench.app import make_app
from anywire.core.settings import Settings

RESUME_WINDOW = 6.0

app = make_app(
    settings=Settings(
        resume_window=RESUME_WINDOW,
        resume_stretch=float(os.environ.get("ANYWIRE_TEST_STRETCH", "10")),
        shed_lag=0.1,
        # A dropped long-poll client is declared gone after poll_window + ping_timeout
        # (2 s), so its resume window starts as soon as the others'.
        ping_interval=1.0,
        min_ping_interval=0.5,
        ping_timeout=1.0,
        poll_window=1.0,
    )
)
_control = app.fallback
_running: set[asyncio.Task[None]] = set()


async def _overload(secs: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + secs
    while loop.time() < end:
        time.sleep(0.25)  # the stimulus: the node cannot run anything else meanwhile
        await asyncio.sleep(0.01)


async def fallback(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/ctl/overload":
        query = parse_qs(scope.get("query_string", b"").decode())
        task = asyncio.get_running_loop().create_task(_overload(float(query["secs"][0])))
        _running.add(task)
        task.add_done_callback(_running.discard)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    await _control(scope, receive, send)


app.fallback = fallback
