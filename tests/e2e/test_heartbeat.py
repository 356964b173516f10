"""Dead-peer detection on every transport: a client that stops answering (pings for
WebSocket and SSE, polls for long-poll) is cut off with a reconnect-range code, and its
session stays resumable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token
from .raw import RawConn


async def _silent(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token(f"silent-{transport}"))
    try:
        await conn.open()
        if transport == "longpoll":
            assert conn._reader is not None
            conn._reader.cancel()  # stop polling: each poll is the heartbeat
            # The silence under test: longer than poll_window + ping_timeout (3.5 s here).
            await asyncio.sleep(4.0)
            r = await conn.http.get("/anywire/poll", headers={"X-Anywire-Token": conn.neg["token"]})
            assert r.status_code == 410 and r.json()[0]["c"] == 4006
        else:
            frame = await conn.recv(timeout=10, skip_control=False)
            assert frame["t"] == "ping"  # ...and we do not answer it
            while frame["t"] != "close":
                frame = await conn.recv(timeout=10, skip_control=False)
            assert frame["c"] == 4001
        # The session survives for resume.
        again = await conn.negotiate(resume=conn.neg["token"])
        assert again.json()["resumable"] is True
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def silenced(server: Server) -> AsyncIterator[Together[None]]:
    """The three transports' silent clients at the same time (own user and session
    each): their silences overlap."""
    together = Together(TRANSPORTS, lambda t: _silent(server, t))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_silent_client_is_declared_dead(silenced: Together[None], transport: str) -> None:
    await silenced.result(transport, 30)  # the run asserts as it goes
