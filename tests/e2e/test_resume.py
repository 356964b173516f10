"""Resume rules at the protocol level, every transport: replay after a drop, recovered
false after the window, duplicate client frames handled once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token
from .raw import RawConn, numbers


async def test_resume_replays_exactly_what_was_missed(server: Server, transport: str) -> None:
    user = f"resume-{transport}"
    conn = RawConn(server.url, transport, make_token(user))
    await conn.open()
    await conn.send({"t": "event", "s": 1, "id": 1, "e": "burst", "d": {"n": 10}})
    # Frames after these three may already be in flight: the client did not see them.
    seen, last = await numbers(conn, 3)
    token = conn.neg["token"]
    await conn.close()  # vanish without a goodbye
    back = RawConn(server.url, transport, make_token(user))
    try:
        hello = await back.open(resume_last=last, resume=token)
        assert back.neg["resumable"] is True
        assert hello["recovered"] is True and hello["seq"] == last and hello["last"] == 1
        rest, _ = await numbers(back, 10 - len(seen))
        assert seen + rest == list(range(10))
    finally:
        await back.close()


async def _resume_too_late(server: Server, transport: str) -> None:
    user = f"late-{transport}"
    conn = RawConn(server.url, transport, make_token(user))
    hello = await conn.open()
    token, sid = conn.neg["token"], hello["sid"]
    await conn.close()
    back = RawConn(server.url, transport, make_token(user))
    try:
        # Wait (bounded) until the server has forgotten the session: the resume window
        # is 3 s in the test app.
        async with asyncio.timeout(10):
            while (await back.negotiate(resume=token)).json()["resumable"]:
                await asyncio.sleep(0.25)
        hello = await back.open(resume_last=0, resume=token)
        # A fresh session, under the same sid: events sent to that sid keep reaching the
        # client, and its own stream goes on.
        assert hello["recovered"] is False and hello["sid"] == sid
    finally:
        await back.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def too_late(server: Server) -> AsyncIterator[Together[None]]:
    """The three transports' runs wait out the resume window at the same time (own user
    and session each)."""
    together = Together(TRANSPORTS, lambda t: _resume_too_late(server, t))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_resume_after_the_window_is_not_recovered(
    too_late: Together[None], transport: str
) -> None:
    await too_late.result(transport, 30)  # the run asserts as it goes


async def test_resume_by_another_user_is_refused(server: Server, transport: str) -> None:
    conn = RawConn(server.url, transport, make_token(f"owner-{transport}"))
    await conn.open()
    try:
        thief = await httpx.AsyncClient(base_url=server.url).post(
            "/anywire/negotiate",
            json={"resume": conn.neg["token"]},
            headers={"Authorization": f"Bearer {make_token('thief')}"},
        )
        assert thief.json()["resumable"] is False and thief.json()["sid"] != conn.neg["sid"]
    finally:
        await conn.close()


async def test_duplicate_client_frames_are_handled_once(server: Server, transport: str) -> None:
    user = f"dupe-{transport}"
    conn = RawConn(server.url, transport, make_token(user))
    try:
        await conn.open()
        frame = {"t": "event", "s": 1, "e": "record", "d": "once"}
        await conn.send(frame)
        await conn.send(frame)  # a retransmission after an uncertain send
        await conn.send([frame, {"t": "event", "s": 2, "e": "record", "d": "twice"}])
        await conn.send({"t": "event", "s": 3, "id": 9, "e": "recorded"})
        ack = await conn.recv()
        assert ack["id"] == 9 and ack["d"] == ["once", "twice"]
    finally:
        await conn.close()
