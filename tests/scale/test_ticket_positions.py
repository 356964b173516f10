"""The stream positions a client reports at negotiate reach the node that redeems its
ticket, whatever Redis does meanwhile (issue #12: a fresh session that lost them started
its streams from "now" and skipped events without a ``$lost``).

A ticket carries a few positions itself; many travel beside it in Redis, and then a
negotiate Redis cannot serve fails (503, try again) and a ticket whose positions are gone
is refused (4007, negotiate again). Negotiate happens on one node and the connection on
the other, on every transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis as redis_sync

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token
from tests.e2e.raw import RawConn

from .conftest import RedisServer, start_nodes

FAST = {"AW_PING_INTERVAL": "1", "AW_PING_TIMEOUT": "2", "AW_POLL_WINDOW": "1"}


@pytest.fixture(scope="module")
def pair(redis: RedisServer) -> Iterator[list[Server]]:
    started = start_nodes(redis, env=FAST)
    yield started
    for node in started:
        node.stop()


@contextlib.contextmanager
def paused(redis: RedisServer) -> Iterator[None]:
    assert redis.proc is not None
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)


async def _publish(node: Server, user: str, n: int) -> list[list[Any]]:
    """``n`` events to ``user``'s stream; their positions."""
    async with Client(node.url, make_token("tp-publisher")) as pub:
        return [
            (await pub.call("publish", {"user": user, "event": "n", "data": i}, timeout=10))["pos"]
            for i in range(n)
        ]


async def _frames(conn: RawConn, until: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Frames received until ``until(frames)`` holds (bounded)."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not until(got):
            frame = await conn.recv()
            got.append(frame)
            if frame.get("t") in ("_closed", "_http", "close"):
                break
    return got


async def test_positions_carried_by_the_ticket_survive_a_redis_pause_at_redeem(
    pair: list[Server], redis: RedisServer, transport: str
) -> None:
    a, b = pair
    user = f"carried-{transport}"
    positions = await _publish(a, user, 3)
    stream, epoch, first = positions[0]
    conn = RawConn(a.url, transport, make_token(user))
    try:
        with paused(redis):
            # Negotiated on a, redeemed on b while Redis is paused: the client holds
            # offset 1 and must still get 2 and 3 (the catch-up waits for Redis).
            opening = asyncio.create_task(
                conn.open(at=b.url, since=[[stream, epoch, first]])
            )
            done, _ = await asyncio.wait({opening}, timeout=1.5)
        hello = await asyncio.wait_for(opening, 15) if not done else opening.result()
        assert hello["t"] == "hello", hello
        assert [stream, epoch, first] in hello["streams"], hello
        frames = await _frames(
            conn, lambda got: [f for f in got if f.get("e") == "n"][-1:]
            and [f for f in got if f.get("e") == "n"][-1]["o"][2] == positions[-1][2]
        )
    finally:
        await conn.close()
    events = [f for f in frames if f.get("t") == "event"]
    assert not [f for f in events if f["e"] == "$lost"], events
    assert [f["o"][2] for f in events if f["e"] == "n"] == [p[2] for p in positions[1:]]


async def test_a_negotiate_whose_many_positions_redis_cannot_keep_answers_503(
    pair: list[Server], redis: RedisServer
) -> None:
    a, _ = pair
    since = [[f"room:/:{'r' * 40}{i}", "epoch", 7] for i in range(40)]  # over 1 KB
    auth = {"Authorization": f"Bearer {make_token('many')}"}
    async with httpx.AsyncClient(timeout=15) as http:
        with paused(redis):
            r = await http.post(a.url + "/anywire/negotiate", json={"since": since}, headers=auth)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == 4000 and "try again" in r.json()["message"]
        # Redis back: the same negotiate works, the positions kept beside the ticket.
        r = await http.post(a.url + "/anywire/negotiate", json={"since": since}, headers=auth)
        assert r.status_code == 200, r.text


async def test_a_ticket_whose_positions_are_gone_is_refused_with_4007(
    pair: list[Server], redis: RedisServer, transport: str
) -> None:
    a, b = pair
    since = [[f"room:/:{'r' * 40}{i}", "epoch", 7] for i in range(40)]
    conn = RawConn(a.url, transport, make_token(f"gone-{transport}"))
    store = redis_sync.Redis.from_url(redis.url)
    try:
        r = await conn.negotiate(transports=[transport], since=since)
        assert r.status_code == 200
        keys = store.keys("aw:tkp:*")
        assert keys, "many positions are kept in Redis"
        store.delete(*keys)  # expired, or Redis lost its data
        conn.neg = r.json()
        refused = await _open_with(conn, b, conn.neg["ticket"])
    finally:
        store.close()
        await conn.close()
    assert "4007" in refused and "positions" in refused, refused


async def _open_with(conn: RawConn, node: Server, ticket: str) -> str:
    """Open a transport on ``node`` with ``ticket``; what the refusal said."""
    if conn.transport == "websocket":
        import websockets

        async with websockets.connect(node.url.replace("http", "ws") + "/anywire/ws") as ws:
            await ws.send(f'{{"t":"connect","ticket":"{ticket}"}}')
            with contextlib.suppress(websockets.ConnectionClosed):
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            return f"{ws.close_code} {ws.close_reason}"
    path = "/anywire/sse" if conn.transport == "sse" else "/anywire/poll"
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(node.url + path, params={"ticket": ticket})
    return f"{r.status_code} {r.text}"
