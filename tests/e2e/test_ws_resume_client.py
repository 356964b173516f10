"""The Python client's resume over the WebSocket without negotiate (protocol section
2.2.1), against a real server: a drop costs one connection and no negotiate, the
replay is exactly once and in order; a session the server lost sends the client to
negotiate in the same attempt (``$lost`` as before); a refused credential stops it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from anywire.clients.python import Client

from .conftest import Server, make_token, start_server

WAIT = 20.0


@pytest.fixture(scope="module")
def lossy() -> Iterator[Server]:
    """Short resume window (a session is lost quickly) and a history of 5 events per
    stream (a longer absence loses some)."""
    srv = start_server({"AW_RESUME_WINDOW": "1.0", "AW_HISTORY": "5"})
    yield srv
    srv.stop()


async def _counters(server: Server) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return dict((await http.get("/anywire/metrics")).json())


def _delta(after: dict[str, int], before: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


class Numbers:
    """Every ``n`` event (its data) and every ``$lost``, in arrival order."""

    def __init__(self, client: Client, event: str = "n") -> None:
        self.items: list[Any] = []
        self.lost: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        client.on(event)(self._take)
        client.on("$lost")(self._lost)

    def _take(self, data: Any) -> None:
        self.items.append(data)
        self.changed.set()

    def _lost(self, data: Any) -> None:
        self.lost.append(data)
        self.changed.set()

    async def until(self, n: int) -> list[Any]:
        async with asyncio.timeout(WAIT):
            while len(self.items) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.items


async def _connected(client: Client, recovered: bool | None = None) -> None:
    async with asyncio.timeout(WAIT):
        while client.state != "connected" or (
            recovered is not None and client.recovered is not recovered
        ):
            await asyncio.sleep(0.02)


async def _drop_mid_stream(server: Server, user: str, **options: Any) -> dict[str, int]:
    """Drop a WebSocket client in the middle of a 300-event stream; asserts the stream
    arrives exactly once and in order on the same session. Returns the counters' change."""
    client = Client(server.url, token=lambda: make_token(user), transports=("websocket",),
                    backoff_base=0.05, backoff_max=0.2, **options)  # fmt: skip
    numbers = Numbers(client)
    try:
        await client.connect()
        sid = client.sid
        await client.emit("burst", {"n": 300, "pause": 0.005})
        await numbers.until(60)
        before = await _counters(server)
        await client.drop_connection()
        assert await numbers.until(300) == list(range(300))
        await _connected(client, recovered=True)
        assert client.sid == sid and client.transport == "websocket"
        assert client.stats["duplicates"] == 0
        after = await _counters(server)
    finally:
        await client.close()
    return {k: _delta(after, before, k) for k in ("negotiations", "ws_resumes", "connections")}


async def test_a_dropped_client_resumes_over_one_connection_without_negotiate(
    server: Server,
) -> None:
    change = await _drop_mid_stream(server, "one-connection")
    assert change == {"negotiations": 0, "ws_resumes": 1, "connections": 1}, change


async def test_turned_off_it_negotiates_as_before(server: Server) -> None:
    """The control: the same drop with ``ws_resume=False`` negotiates (what the client
    did before this change)."""
    change = await _drop_mid_stream(server, "negotiating", ws_resume=False)
    assert change == {"negotiations": 1, "ws_resumes": 0, "connections": 1}, change


async def test_a_lost_session_falls_back_to_negotiate_and_reports_lost(lossy: Server) -> None:
    room = "ws-resume-lost"
    held = asyncio.Event()
    gate = asyncio.Event()
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            held.set()
            await gate.wait()  # the reconnect waits until the session is gone
        return make_token("lost-one")

    pub = Client(lossy.url, make_token("lost-pub"), transports=("websocket",))
    client = Client(lossy.url, token=token, transports=("websocket",), backoff_base=0.05,
                    backoff_max=0.2, refresh=False)  # fmt: skip
    numbers = Numbers(client)
    try:
        await pub.connect()
        await client.connect()
        await client.join(room, timeout=5)
        for i in range(1, 3):
            await pub.call("publish", {"room": room, "event": "n", "data": i}, timeout=5)
        await numbers.until(2)
        before = await _counters(lossy)
        await client.drop_connection()
        async with asyncio.timeout(WAIT):
            await held.wait()  # the direct resume waits for its credential
            while int((await pub.call("stats", timeout=5))["sessions"]) >= 2:
                await asyncio.sleep(0.1)
        for i in range(3, 13):  # history keeps the last 5: 8..12
            await pub.call("publish", {"room": room, "event": "n", "data": i}, timeout=5)
        gate.set()
        await _connected(client, recovered=False)
        await numbers.until(7)
        assert numbers.items == [1, 2, 8, 9, 10, 11, 12]
        (lost,) = numbers.lost
        assert (lost["from"], lost["to"], lost["room"]) == (3, 7, room)
        after = await _counters(lossy)
        # One direct attempt, refused (4007), then one negotiate in the same attempt.
        assert _delta(after, before, "ws_resume_refused") == 1
        assert _delta(after, before, "ws_resumes") == 0
        assert _delta(after, before, "negotiations") == 1
    finally:
        gate.set()
        await client.close()
        await pub.close()


async def test_a_refused_credential_stops_the_client(server: Server) -> None:
    tokens = iter([make_token("refused"), make_token("refused") + "x"])
    client = Client(server.url, token=lambda: next(tokens, "garbage"), transports=("websocket",),
                    backoff_base=0.05, backoff_max=0.1, refresh=False)  # fmt: skip
    try:
        await client.connect()
        before = await _counters(server)
        await client.drop_connection()
        async with asyncio.timeout(WAIT):
            while client.state != "disconnected":
                await asyncio.sleep(0.02)
        assert client._runner is None or client._runner.done()  # no retry follows
        after = await _counters(server)
        assert _delta(after, before, "ws_resume_refused") == 1
        assert _delta(after, before, "negotiations") == 0
        assert _delta(after, before, "auth_refused") == 1
        assert client._ended is not None and client._ended.code == 4501
    finally:
        await client.close()


async def test_after_a_direct_resume_the_credential_is_refreshed_before_it_expires(
    server: Server,
) -> None:
    """The credential negotiate saw lasts an hour; every later one 6 s. The direct
    resume's hello says so, and the client refreshes in-band before that credential's
    ``exp``: the session outlives it on the resumed connection, with no 4004."""
    user = "direct-refresh"
    tokens: list[str] = []

    def token() -> str:
        tokens.append(make_token(user, ttl=3600 if not tokens else 6))
        return tokens[-1]

    client = Client(server.url, token=token, transports=("websocket",), backoff_base=0.05,
                    backoff_max=0.2)  # fmt: skip
    try:
        await client.connect()
        assert client.refresher is not None
        before = await _counters(server)
        await client.drop_connection()
        async with asyncio.timeout(WAIT):
            while _delta(await _counters(server), before, "ws_resumes") < 1:
                await asyncio.sleep(0.05)
        await _connected(client, recovered=True)
        resume_exp = float(jwt.decode(tokens[1], options={"verify_signature": False})["exp"])
        async with asyncio.timeout(WAIT):
            while client.refresher.refreshed < 1:
                await asyncio.sleep(0.05)
        assert time.time() < resume_exp  # in time
        async with asyncio.timeout(WAIT):
            while time.time() < resume_exp + 1.0:  # past the resume's credential
                await asyncio.sleep(0.1)
        assert await client.call("echo", "still", timeout=5) == "still"
        after = await _counters(server)
    finally:
        await client.close()
    assert _delta(after, before, "auth_expired_refused") == 0
    assert _delta(after, before, "connections") == 1  # the direct resume's, still live
    assert _delta(after, before, "negotiations") == 0
    assert _delta(after, before, "auth_refreshed") >= 1
