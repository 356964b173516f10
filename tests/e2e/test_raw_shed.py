"""The tests' raw client (tests/e2e/raw.py) waits out a server's load shedding as every
client does: a negotiate refused 503 "server overloaded" is asked again after its
Retry-After. The test servers shed at the default 0.5 s of lateness, and side by side on
2 cores a server's loop runs that late: test_backpressure's second client got the 503
and failed (``raise_for_status``) in a phase-1 run at load ~15."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from .conftest import Server, make_token
from .raw import RawConn, shed


def _paused(server: Server, seconds: float) -> None:
    """Stop the server's process for ``seconds`` (its loop wakes that late: it sheds)."""
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the stimulus: the process cannot run meanwhile
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
async def test_a_shed_negotiate_is_waited_out_and_the_connection_opens(
    server: Server, transport: str
) -> None:
    _paused(server, 1.0)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        refused = await http.post(
            "/anywire/negotiate",
            json={"transports": [transport]},
            headers={"Authorization": f"Bearer {make_token('shed-probe')}"},
        )
    assert shed(refused) is not None, refused.text  # the server does shed now
    conn = RawConn(server.url, transport, make_token(f"shed-{transport}"))
    try:
        hello = await conn.open()
        assert hello["t"] == "hello", hello
    finally:
        await conn.close()


async def test_a_session_cap_refusal_is_not_taken_for_shedding() -> None:
    capped = httpx.Response(
        503, json={"error": "busy", "code": 4000, "message": "too many sessions for this user",
                   "retry_after": 5}, headers={"Retry-After": "5"},
    )  # fmt: skip
    assert shed(capped) is None
    overloaded = httpx.Response(
        503, json={"error": "busy", "code": 4000, "message": "server overloaded: try later",
                   "retry_after": 2}, headers={"Retry-After": "2"},
    )  # fmt: skip
    assert shed(overloaded) == 2.0
