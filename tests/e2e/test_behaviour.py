"""The behavioural suite: every end-to-end behaviour, on every transport, with the Python
client against real uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from anywire.clients.python import AckError, AckTimeout, Client
from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token

WAIT = 10.0


class Inbox:
    """Collects events of one name and lets a test wait for a count, bounded."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, data: Any) -> None:
        self.items.append(data)
        self._changed.set()

    async def wait_for(self, n: int, timeout: float = WAIT) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.items) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.items


@pytest.fixture
async def connect(server: Server, transport: str) -> AsyncIterator[Callable[..., Any]]:
    clients: list[Client] = []

    async def make(user: str = "alice", **options: Any) -> Client:
        client = Client(
            server.url, token=lambda: make_token(user), transports=(transport,), **options
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_connects_on_the_requested_transport(connect: Any, transport: str) -> None:
    client = await connect()
    await client.connect()
    assert client.transport == transport
    assert client.state == "connected"
    assert await client.call("echo", {"hi": [1, 2, 3]}) == {"hi": [1, 2, 3]}


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_binary_and_unicode_round_trip(connect: Any, codec: str) -> None:
    client = await connect(codec=codec)
    await client.connect()
    value = {"bytes": b"\x00\xffbinary", "text": "héllo 🌍", "n": 2**40}
    assert await client.call("echo", value) == value


async def test_handler_error_becomes_error_ack(connect: Any) -> None:
    client = await connect()
    await client.connect()
    with pytest.raises(AckError) as info:
        await client.call("fail", None)
    assert info.value.code == "handler_error"
    with pytest.raises(AckError) as info:
        await client.call("no-such-event", None)
    assert info.value.code == "no_handler"
    assert await client.call("echo", "alive") == "alive"


async def test_client_ack_timeout_is_distinct(connect: Any) -> None:
    client = await connect()
    await client.connect()
    with pytest.raises(AckTimeout):
        await client.call("sleep", 2, timeout=0.3)
    assert await client.call("echo", 1) == 1


async def test_server_awaits_client_ack(connect: Any) -> None:
    client = await connect()

    @client.on("question")
    async def answer(data: Any) -> Any:
        return {"answer": data * 2}

    @client.on("explode")
    def explode(data: Any) -> Any:
        raise ValueError("client side failure")

    await client.connect()
    assert await client.call("ask", {"event": "question", "data": 21}) == {"reply": {"answer": 42}}
    failed = await client.call("ask", {"event": "explode"})
    assert failed["error"] == "handler_error"
    timed_out = await client.call("ask", {"event": "unanswered", "timeout": 0.5})
    assert timed_out in (
        {"timeout": True},
        {"error": "no_handler", "message": timed_out.get("message")},
    )


async def test_rooms_and_exclusion(connect: Any) -> None:
    a, b, c = await connect("ann"), await connect("bob"), await connect("cid")
    inbox = {name: Inbox() for name in "abc"}
    for client, name in ((a, "a"), (b, "b"), (c, "c")):
        client.on("news")(inbox[name])
        await client.connect()
    await a.join("r1")
    await b.join("r1")
    await a.call("to_room", {"room": "r1", "event": "news", "data": "to all", "skip_self": False})
    await a.call("to_room", {"room": "r1", "event": "news", "data": "to others", "skip_self": True})
    assert await inbox["b"].wait_for(2) == ["to all", "to others"]
    assert await inbox["a"].wait_for(1) == ["to all"]
    # c is not in the room; a later direct event proves nothing was queued for it before.
    await c.call("to_room", {"room": "r1", "event": "news", "data": "from outside"})
    await inbox["b"].wait_for(3)
    assert inbox["c"].items == []
    await b.leave("r1")
    await a.call("to_room", {"room": "r1", "event": "news", "data": "after leave"})
    await inbox["a"].wait_for(3)
    assert inbox["b"].items == ["to all", "to others", "from outside"]


async def test_join_authorization_and_presence(connect: Any) -> None:
    a, b = await connect("ann"), await connect("bob")
    joins = Inbox()
    a.on("$join")(joins)
    await a.connect()
    await b.connect()
    with pytest.raises(AckError) as info:
        await a.join("private-room")
    assert info.value.code == "forbidden"
    await a.join("lobby")
    await b.join("lobby", meta={"color": "blue"})
    (event,) = await joins.wait_for(1)
    assert event["user"] == "bob" and event["meta"] == {"color": "blue"}
    members = await a.call("presence", {"room": "lobby"})
    assert sorted(m["user"] for m in members) == ["ann", "bob"]
    leaves = Inbox()
    a.on("$leave")(leaves)
    await b.leave("lobby")
    (event,) = await leaves.wait_for(1)
    assert event["user"] == "bob" and event["room"] == "lobby"
    assert [m["user"] for m in await a.call("presence", {"room": "lobby"})] == ["ann"]


async def test_emit_to_one_session(connect: Any) -> None:
    a, b = await connect("ann"), await connect("ann")
    inbox = {id(c): Inbox() for c in (a, b)}
    for client in (a, b):
        client.on("private")(inbox[id(client)])
        await client.connect()
    await a.call("to_sid", {"sid": b.sid, "event": "private", "data": "just you"})
    assert await inbox[id(b)].wait_for(1) == ["just you"]
    assert await a.call("echo", "sync") == "sync"  # anything for a would have come first
    assert inbox[id(a)].items == []


async def test_user_targeting_reaches_every_session_of_the_user(connect: Any) -> None:
    bob1, bob2, carol = await connect("bob"), await connect("bob"), await connect("carol")
    inbox = {id(c): Inbox() for c in (bob1, bob2, carol)}
    for client in (bob1, bob2, carol):
        client.on("dm")(inbox[id(client)])
        await client.connect()
    await carol.call("to_user", {"user": "bob", "event": "dm", "data": "psst"})
    assert await inbox[id(bob1)].wait_for(1) == ["psst"]
    assert await inbox[id(bob2)].wait_for(1) == ["psst"]
    await bob1.call("to_user", {"user": "carol", "event": "dm", "data": "back"})
    assert await inbox[id(carol)].wait_for(1) == ["back"]


async def test_order_of_a_thousand_messages_both_ways(connect: Any, transport: str) -> None:
    client = await connect(f"order-{transport}")
    numbers = Inbox()
    client.on("n")(numbers)
    await client.connect()
    await client.call("burst", {"n": 1000})
    assert await numbers.wait_for(1000, timeout=30) == list(range(1000))
    for i in range(1000):
        await client.emit("record", i)
    recorded = await client.call("recorded", None, timeout=30)
    assert recorded == list(range(1000))


async def test_drop_mid_stream_resumes_with_nothing_lost_or_duplicated(
    connect: Any, transport: str
) -> None:
    client = await connect(f"drop-{transport}", backoff_base=0.05, backoff_max=0.2)
    numbers = Inbox()
    client.on("n")(numbers)
    await client.connect()
    sid = client.sid
    await client.emit("burst", {"n": 1000, "pause": 0.01})
    await numbers.wait_for(200, timeout=30)
    await client.drop_connection()
    received = await numbers.wait_for(1000, timeout=30)
    assert received == list(range(1000))
    assert client.sid == sid and client.recovered is True
    # Upstream too: frames emitted around a drop are handled exactly once.
    for i in range(50):
        await client.emit("record", i)
        if i == 25:
            await client.drop_connection()
    assert await client.call("recorded", None, timeout=30) == list(range(50))


async def test_token_expiry_closes_with_reauth_code_and_client_recovers(
    server: Server, transport: str
) -> None:
    tokens: list[str] = []

    def token() -> str:
        tokens.append(make_token("expiring", ttl=2 if not tokens else 600))
        return tokens[-1]

    # Without in-band refresh (tests/e2e/test_refresh.py has it): the reconnect path.
    client = Client(
        server.url,
        token=token,
        transports=(transport,),
        backoff_base=0.05,
        backoff_max=0.2,
        refresh=False,
    )
    try:
        await client.connect()
        async with asyncio.timeout(WAIT):
            while len(tokens) < 2 or client.state != "connected":
                await asyncio.sleep(0.05)
        assert client.last_close is not None and client.last_close[0] == 4004
        assert await client.call("echo", "renewed") == "renewed"
    finally:
        await client.close()


async def _idle_for_a_while(server: Server, transport: str) -> dict[str, Any]:
    client = Client(server.url, token=lambda: make_token("alice"), transports=(transport,))
    try:
        await client.connect()
        sid, chosen = client.sid, client.transport
        # Idle for well over ping_interval + ping_timeout (1 s + 1.5 s) and the poll window.
        await asyncio.sleep(4)  # the condition under test, not a synchronisation
        return {
            "state": client.state, "same_sid": client.sid == sid,
            "same_transport": client.transport == chosen, "last_close": client.last_close,
            "echo": await client.call("echo", "still"),
        }  # fmt: skip
    finally:
        await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def idled(server: Server) -> AsyncIterator[Together[dict[str, Any]]]:
    """The three transports' idle clients at the same time: one 4 s wait, not three."""
    together = Together(TRANSPORTS, lambda t: _idle_for_a_while(server, t))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_heartbeats_keep_an_idle_connection_alive(
    idled: Together[dict[str, Any]], transport: str
) -> None:
    out = await idled.result(transport, 3 * WAIT)
    assert out["state"] == "connected" and out["same_sid"] and out["same_transport"]
    assert out["last_close"] is None
    assert out["echo"] == "still"


async def test_fresh_session_catches_up_on_a_room_from_its_stream_position(
    connect: Any, transport: str
) -> None:
    room = f"catch-up-{transport}"
    publisher, reader = await connect("pub"), await connect("reader")
    seen = Inbox()
    reader.on("news")(seen)
    await publisher.connect()
    await reader.connect()
    await reader.join(room)
    for i in range(3):
        await publisher.call("to_room", {"room": room, "event": "news", "data": i})
    assert await seen.wait_for(3) == [0, 1, 2]
    position = reader.positions[room]
    await reader.close()  # the session is gone for good: no session-level resume
    for i in range(3, 8):
        await publisher.call("to_room", {"room": room, "event": "news", "data": i})

    again = await connect("reader")
    caught = Inbox()
    again.on("news")(caught)
    await again.connect()
    answer = await again.join(room, since=position)
    assert answer["recovered"] is True
    await publisher.call("to_room", {"room": room, "event": "news", "data": 8})
    assert await caught.wait_for(6) == [3, 4, 5, 6, 7, 8]  # missed ones, in order, then live

    lost = await connect("reader")
    await lost.connect()
    answer = await lost.join(room, since=("another-epoch", 1))
    assert answer["recovered"] is False  # honest: that history is not here


async def _lost_session_rejoins(server: Server, transport: str) -> None:
    """Asserts as it goes. Its own user per transport, so the three runs can go side by
    side: each waits out the resume window of its own session."""
    room = f"rejoin-{transport}"
    user = f"rejoiner-{transport}"
    gate = asyncio.Event()
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            await gate.wait()  # hold the reconnection until the old session is gone
        return make_token(user)

    client = Client(
        server.url, token=token, transports=(transport,), backoff_base=0.05, backoff_max=0.1
    )
    publisher = Client(server.url, token=lambda: make_token("pub"), transports=(transport,))
    seen = Inbox()
    client.on("news")(seen)
    try:
        await client.connect()
        await publisher.connect()
        await client.join(room, meta={"nick": "r"})
        await publisher.call("to_room", {"room": room, "event": "news", "data": 0})
        await seen.wait_for(1)
        old_token = client._neg.token  # type: ignore[union-attr]
        await client.drop_connection()
        for i in (1, 2, 3):
            await publisher.call("to_room", {"room": room, "event": "news", "data": i})
        async with httpx.AsyncClient() as http, asyncio.timeout(10):
            while True:  # until the server has forgotten the session (3 s window)
                r = await http.post(
                    server.url + "/anywire/negotiate",
                    json={"resume": old_token},
                    headers={"Authorization": f"Bearer {make_token(user)}"},
                )
                if r.json()["resumable"] is False:
                    break
                await asyncio.sleep(0.2)
        gate.set()
        assert await seen.wait_for(4) == [0, 1, 2, 3]
        assert client.recovered is False and room in client.rooms
        members = await publisher.call("presence", {"room": room})
        assert [m["meta"] for m in members if m["user"] == user] == [{"nick": "r"}]
    finally:
        gate.set()
        await client.close()
        await publisher.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rejoined(server: Server) -> AsyncIterator[Together[None]]:
    """The three transports' lost sessions at the same time: one resume window, not three."""
    together = Together(TRANSPORTS, lambda t: _lost_session_rejoins(server, t))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_lost_session_rejoins_its_rooms_and_replays_what_they_published(
    rejoined: Together[None], transport: str
) -> None:
    await rejoined.result(transport, 3 * WAIT)
