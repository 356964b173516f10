"""anywire.publisher: events published straight to Redis, from a plain thread or an asyncio
loop, reach clients on two real nodes (every transport) exactly like a node's own emits:
in order, on the same stream offsets, and caught up on resume after a drop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from anywire.clients.python import Client
from anywire.errors import BrokerUnavailable
from anywire.publisher import AsyncPublisher, Publisher
from tests.e2e.conftest import Server, free_port, make_token
from tests.netfault import FaultProxy
from tests.scale.conftest import RedisServer
from tests.scale.test_broadcast import Inbox


async def test_room_user_and_session_events_from_a_thread(
    nodes: list[Server], redis: RedisServer, transport: str
) -> None:
    room = f"pub-room-{transport}"
    a = Client(nodes[0].url, make_token(f"pa-{transport}"), transports=(transport,))
    b = Client(nodes[1].url, make_token(f"pb-{transport}"), transports=(transport,))
    inbox_a, inbox_b = Inbox(a, "tick", "dm"), Inbox(b, "tick", "dm", "direct")
    async with a, b:
        await a.join(room)
        await b.join(room)
        # A node's own emit first: the Publisher's events follow it on the same stream.
        await a.call("to_room", {"room": room, "event": "tick", "data": -1})

        def publish() -> list[Any]:
            assert not _has_loop()
            pub = Publisher(redis.url)
            try:
                positions = [pub.emit("tick", {"n": i}, room=room) for i in range(20)]
                pub.emit("dm", "for b", user=f"pb-{transport}")
                pub.emit("direct", [1, 2], sid=b.sid)
                return positions
            finally:
                pub.close()

        positions = await asyncio.to_thread(publish)  # a plain thread: no event loop
        want = [-1, *({"n": i} for i in range(20))]
        await inbox_a.until(lambda: len(inbox_a.of("tick")) == 21)
        await inbox_b.until(lambda: len(inbox_b.of("direct")) == 1)
        assert inbox_a.of("tick") == want and inbox_b.of("tick") == want
        assert inbox_b.of("dm") == ["for b"] and inbox_a.of("dm") == []
        assert inbox_b.of("direct") == [[1, 2]]
        # The node's emit had offset 1; the Publisher's took 2..21 of the same stream.
        stream, epoch, _ = positions[0]
        assert stream == f"room:/:{room}"
        assert [p[2] for p in positions] == list(range(2, 22))
        assert a.positions[room] == b.positions[room] == (epoch, 21)


async def test_a_dropped_client_catches_up_what_the_publisher_sent_meanwhile(
    nodes: list[Server], redis: RedisServer, transport: str
) -> None:
    room = f"pub-resume-{transport}"
    proxy = FaultProxy(nodes[0].port)
    client = Client(proxy.url, make_token(f"pr-{transport}"), transports=(transport,))
    inbox = Inbox(client, "tick")
    pub = AsyncPublisher(redis.url)
    try:
        async with client:
            await client.join(room)
            await pub.emit("tick", 0, room=room)
            await inbox.until(lambda: inbox.of("tick") == [0])
            sid = client.sid
            proxy.set("refuse")  # the connection drops; reconnects are refused
            for i in range(1, 11):
                await pub.emit("tick", i, room=room)
            assert inbox.of("tick") == [0]
            proxy.set("forward")
            await inbox.until(lambda: len(inbox.of("tick")) == 11, timeout=20)
            assert inbox.of("tick") == list(range(11))
            assert client.sid == sid and client.recovered is True
    finally:
        await pub.aclose()
        proxy.close()


async def test_idempotency_key_publishes_once(nodes: list[Server], redis: RedisServer) -> None:
    pub = AsyncPublisher(redis.url)
    try:
        first = await pub.emit("once", 1, room="pub-idem", id="order-42")
        again = await pub.emit("once", 1, room="pub-idem", id="order-42")
        other = await pub.emit("once", 2, room="pub-idem", id="order-43")
    finally:
        await pub.aclose()
    assert again == first and other[2] == first[2] + 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: p.emit("$join", 1, room="r"), ValueError, "reserved"),
        (lambda p: p.emit("", 1, room="r"), ValueError, "non-empty"),
        (lambda p: p.emit(3, 1, room="r"), ValueError, "non-empty string"),
        (lambda p: p.emit("e", 1, room="r", user="u"), ValueError, "at most one"),
        (lambda p: p.emit("e", 1, room=""), ValueError, "non-empty strings"),
        (lambda p: p.emit("e", object(), room="r"), TypeError, "cannot encode"),
        (lambda p: p.emit("e", {"when": object()}, user="u"), TypeError, "cannot encode"),
        (lambda p: p.emit("e", 1, room="r", id=""), ValueError, "1-200"),
        (lambda p: p.emit("e", 1, room="r", id="x" * 201), ValueError, "1-200"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_published(
    redis: RedisServer, call: Any, error: type[Exception], message: str
) -> None:
    pub = Publisher(redis.url)
    try:
        with pytest.raises(error, match=message):
            call(pub)
    finally:
        pub.close()
    assert redis.cli("exists", "aw:{room:/:r}:n").strip() == "0"


def test_bad_namespace_and_unreachable_redis() -> None:
    with pytest.raises(ValueError, match="namespace"):
        Publisher("redis://127.0.0.1:1/0", namespace="chat")
    pub = Publisher(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(BrokerUnavailable, match="was not published"):
            pub.emit("e", 1, room="r")
    finally:
        pub.close()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
