"""Two copies of one session, on two nodes, after Redis went away: the client must only
ever be resumed by the copy it holds.

Seen in tests/scale/test_sentinel_nodes.py (about 1 run in 7): while the Sentinel primary
was down, a client's resume landed on node B, which could not resume it (the session was
on A) and gave it a fresh session under the same sid; B could not tell A (Redis down), so
A kept its copy. The client's next negotiate or ticket reached A, whose copy took the
client's ``resume{last: 0}`` (numbered for B's session) and replayed its whole outbox:
every event the client had since it joined, as new (docs/reliability/sentinel-duplicates.md).

Deterministic: two in-process nodes on a real redis-server, which is killed at the moment
that matters (after the client's session is on A, before it moves to B).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from anywire.core.frames import Connect, Event, Resume
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.websocket import INFO as WEBSOCKET
from tests.e2e.conftest import free_port
from tests.server.helpers import frames, issue

from .conftest import SECRET, RedisServer

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def two_nodes() -> AsyncIterator[tuple[RedisServer, Anywire, Anywire]]:
    redis = RedisServer(free_port())
    redis.start()
    nodes = []
    for _ in range(2):
        aw = Anywire(anonymous=True, secret=SECRET.encode())
        aw.use_redis(redis.url)

        @aw.on("echo")
        def echo(sock: object, data: object) -> object:
            return data

        await aw.start()
        nodes.append(aw)
    try:
        yield redis, nodes[0], nodes[1]
    finally:
        redis.kill()
        for aw in nodes:
            await aw.stop(grace=0.1)


async def _attach(aw: Anywire, opening: Connect | Resume) -> tuple[Link, list[dict[str, object]]]:
    """Open a connection on ``aw`` with ``opening``; returns it and what it was sent."""
    link = Link(WEBSOCKET, aw.host.codec("json"))
    await aw.host.attach(link, opening)
    return link, frames(aw, link)


async def _left_behind(redis: RedisServer, a: Anywire, b: Anywire) -> tuple[str, str]:
    """A session on A with three acks in its outbox (never acknowledged by the client),
    then Redis gone, then the client's resume on B: B gives it a fresh session under the
    same sid and cannot tell A. Returns the sid and the token the client now holds."""
    first = await issue(a)
    link, sent = await _attach(a, Connect(first.ticket))
    assert sent[0]["t"] == "hello"
    a.host.feed(first.sid, [Event(s=i, id=i, e="echo", d=f"m{i}") for i in (1, 2, 3)])
    assert [f["s"] for f in frames(a, link) if f["t"] == "ack"] == [1, 2, 3]
    a.host.detach(link)  # the connection drops; the client has the three acks (last=3)
    redis.kill()
    moved = await issue(a, resume=first.token)  # negotiate reached A: resumable there
    assert moved.resumable is True
    _, sent = await _attach(b, Resume(moved.ticket, 3))  # the ticket reached B
    assert sent[0]["t"] == "hello" and sent[0]["recovered"] is False
    assert first.sid in a.host.sessions  # A's copy lives on: nobody could tell A
    return first.sid, moved.token


async def test_a_copy_left_behind_does_not_resume_a_token_it_never_issued(
    two_nodes: tuple[RedisServer, Anywire, Anywire],
) -> None:
    redis, a, b = two_nodes
    sid, token = await _left_behind(redis, a, b)
    # The client (on B's session, nothing received there: last=0) negotiates again and
    # reaches A: A's copy never issued that token, so it is not offered as resumable.
    again = await issue(a, resume=token)
    assert again.sid == sid
    assert again.resumable is False


async def test_a_ticket_resumes_only_the_copy_its_negotiate_found(
    two_nodes: tuple[RedisServer, Anywire, Anywire],
) -> None:
    redis, a, b = two_nodes
    sid, token = await _left_behind(redis, a, b)
    # The client negotiates on B (its session is there: resumable), and the ticket reaches
    # A, whose copy could serve last=0 from its outbox but is not the client's session.
    again = await issue(b, resume=token)
    assert again.resumable is True
    _, sent = await _attach(a, Resume(again.ticket, 0))
    assert sent[0]["t"] == "hello" and sent[0]["recovered"] is False
    replayed = [f for f in sent if f["t"] == "ack"]
    assert replayed == []  # before the fix: A's acks 1, 2, 3 again, as new
    assert a.host.sessions[sid].incarnation != ""
