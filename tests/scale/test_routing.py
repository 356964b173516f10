"""Interest routing across real nodes: a node receives only the streams its sessions
consume, a join racing publishes misses and repeats nothing, everything that goes to many
nodes (everyone, a user on two nodes, a sid, presence) still arrives, and a killed
subscription comes back with every room resubscribed and filled.

Three real nodes (``anywire serve --redis``) on one real redis-server, with a short
linger (``AW_ROUTE_LINGER``) so that a left room is really unsubscribed between rounds;
the events are published straight to Redis by a :class:`~anywire.publisher.AsyncPublisher`
(the same script and channel as a node's emit), whose returned positions are the record
the invariant is checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client
from anywire.publisher import AsyncPublisher
from anywire.redis_wire import stream_channel
from tests.e2e.conftest import Server, make_token
from tests.waiting import until

from .conftest import Nginx, RedisServer, start_nginx, start_nodes
from .test_broadcast import Inbox

LINGER = 0.3


@pytest.fixture(scope="module")
def three(redis: RedisServer) -> Iterator[tuple[list[Server], Nginx]]:
    started = start_nodes(redis, 3, env={"AW_ROUTE_LINGER": str(LINGER)})
    ngx = start_nginx("round-robin-3.conf", [n.port for n in started])
    yield started, ngx
    ngx.stop()
    for node in started:
        node.stop()


def metric(node: Server, name: str) -> int:
    return int(httpx.get(node.url + "/anywire/metrics?format=json").json()[name])


def subscribers(redis: RedisServer, room: str) -> int:
    """How many connections Redis has subscribed to ``room``'s channel (one per node)."""
    out = redis.cli("PUBSUB", "NUMSUB", stream_channel("aw", f"room:/:{room}")).split()
    return int(out[1])


@dataclass
class Published:
    """What a publisher sent: data -> (epoch, offset), per room."""

    positions: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)
    count: int = 0


@contextlib.asynccontextmanager
async def publishing(url: str, rooms: list[str], limit: int = 20_000) -> AsyncIterator[Published]:
    """Publish ``tick`` events to ``rooms`` in turn, as fast as Redis answers, until the
    block ends (bounded by ``limit`` events)."""
    record = Published({room: {} for room in rooms})
    stop = asyncio.Event()

    async def run() -> None:
        pub = AsyncPublisher(url)
        try:
            for i in range(limit):
                if stop.is_set():
                    return
                room = rooms[i % len(rooms)]
                _, epoch, offset = await pub.emit("tick", i, room=room)
                record.positions[room][i] = (epoch, offset)
                record.count += 1
                if i % 20 == 0:
                    await asyncio.sleep(0)  # let the clients' tasks run too
        finally:
            await pub.aclose()

    task = asyncio.create_task(run())
    try:
        # Running before the block starts its joins.
        async with asyncio.timeout(10):
            while record.count < 5:
                await asyncio.sleep(0.01)
        yield record
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def offsets(record: Published, room: str, items: list[Any]) -> list[int]:
    return [record.positions[room][i][1] for i in items]


async def test_a_join_racing_publishes_misses_and_repeats_nothing(
    three: tuple[list[Server], Nginx], redis: RedisServer, transport: str
) -> None:
    """Five rounds of join / leave on a node that has no other member of the room while
    events are published to it without pause: each join's subscription is made while
    events go out (the room was unsubscribed after the previous round's linger), and the
    client gets every event after its join position exactly once, in order."""
    nodes, _ = three
    node = nodes[1]
    room = f"race-{transport}"
    client = Client(node.url, make_token(f"race-{transport}"), transports=(transport,))
    inbox = Inbox(client, "tick", "$lost")
    rounds: list[tuple[tuple[str, int], list[Any]]] = []
    async with client, publishing(redis.url, [room]) as record:
        for _ in range(5):
            assert subscribers(redis, room) == 0
            mark = len(inbox.items)
            answer = await client.join(room)
            assert subscribers(redis, room) == 1
            start = (str(answer["position"][0]), int(answer["position"][1]))
            await inbox.until(lambda mark=mark: len(inbox.items) - mark >= 30)
            await client.leave(room)
            rounds.append((start, [d for n, d in inbox.items[mark:] if n == "tick"]))
            # Unsubscribed after the linger: the next join subscribes again.
            await until(lambda: subscribers(redis, room) == 0, 5, "the unsubscribe")
    assert inbox.of("$lost") == []
    assert client.stats["duplicates"] == 0
    for (epoch, after), items in rounds:
        got = offsets(record, room, items)
        assert {record.positions[room][i][0] for i in items} == {epoch}
        assert got == list(range(after + 1, after + 1 + len(got))), (after, got)
        assert len(got) >= 30


async def test_a_node_receives_a_room_only_while_it_hosts_a_member(
    three: tuple[list[Server], Nginx], redis: RedisServer, transport: str
) -> None:
    nodes, _ = three
    a, b, c = nodes
    room = f"only-{transport}"
    on_a = Client(a.url, make_token(f"only-a-{transport}"), transports=(transport,))
    on_b = Client(b.url, make_token(f"only-b-{transport}"), transports=(transport,))
    inbox_a, inbox_b = Inbox(on_a, "tick"), Inbox(on_b, "tick")
    pub = AsyncPublisher(redis.url)
    try:
        async with on_a, on_b:
            await on_a.join(room)
            before = [metric(n, "broker_received") for n in nodes]
            for i in range(50):
                await pub.emit("tick", i, room=room)
            await inbox_a.until(lambda: len(inbox_a.of("tick")) == 50)
            after = [metric(n, "broker_received") for n in nodes]
            assert after[0] - before[0] >= 50
            assert after[1] == before[1] and after[2] == before[2]  # no member: nothing

            await on_b.join(room)  # b hosts a member now: it receives the room
            before = [metric(n, "broker_received") for n in nodes]
            for i in range(50, 60):
                await pub.emit("tick", i, room=room)
            await inbox_b.until(lambda: len(inbox_b.of("tick")) == 10)
            assert inbox_b.of("tick") == list(range(50, 60))
            assert metric(b, "broker_received") - before[1] >= 10
            assert metric(c, "broker_received") == before[2]

            assert subscribers(redis, room) == 2
            await on_b.leave(room)  # and stops after its last member left (+ linger)
            await until(lambda: subscribers(redis, room) == 1, 5, "the unsubscribe")
            before = [metric(n, "broker_received") for n in nodes]
            for i in range(60, 70):
                await pub.emit("tick", i, room=room)
            await inbox_a.until(lambda: len(inbox_a.of("tick")) == 70)
            assert metric(b, "broker_received") == before[1]
            assert metric(c, "broker_received") == before[2]
            assert inbox_b.of("tick") == list(range(50, 60))
    finally:
        await pub.aclose()


async def test_everyone_a_user_on_two_nodes_a_sid_and_presence_behind_round_robin(
    three: tuple[list[Server], Nginx], transport: str
) -> None:
    nodes, ngx = three
    user = f"two-{transport}"
    room = f"pres-{transport}"
    # The user's two devices on two different nodes; three more clients through nginx.
    dev1 = Client(nodes[0].url, make_token(user), transports=(transport,))
    dev2 = Client(nodes[2].url, make_token(user), transports=(transport,))
    others = [
        Client(ngx.url, make_token(f"rr{i}-{transport}"), transports=(transport,)) for i in range(3)
    ]
    everyone = [dev1, dev2, *others]
    boxes = [Inbox(c, "all", "dm", "direct", "$join", "$leave") for c in everyone]
    for cl in everyone:
        await cl.connect()
    try:
        sender = others[0]
        await sender.call("to_all", {"event": "all", "data": 1})
        for box in boxes:
            await box.until(lambda box=box: box.of("all") == [1])
        await sender.call("to_user", {"user": user, "event": "dm", "data": "hi"})
        await boxes[0].until(lambda: boxes[0].of("dm") == ["hi"])
        await boxes[1].until(lambda: boxes[1].of("dm") == ["hi"])
        target = others[2]
        await sender.call("to_sid", {"sid": target.sid, "event": "direct", "data": 7})
        await boxes[4].until(lambda: boxes[4].of("direct") == [7])

        # Presence: members on several nodes hear a join and a leave from any node.
        for cl in (dev1, others[1]):
            await cl.join(room)
        await dev2.join(room)
        for i in (0, 3):
            await boxes[i].until(lambda i=i: dev2.sid in [j["sid"] for j in boxes[i].of("$join")])
        await dev2.leave(room)
        for i in (0, 3):
            await boxes[i].until(lambda i=i: dev2.sid in [j["sid"] for j in boxes[i].of("$leave")])
        # Exactly who was addressed, once each.
        assert [b.of("dm") for b in boxes] == [["hi"], ["hi"], [], [], []]
        assert [b.of("direct") for b in boxes] == [[], [], [], [], [7]]
        assert all(b.of("all") == [1] for b in boxes)
        assert all(cl.stats["duplicates"] == 0 for cl in everyone)
    finally:
        for cl in everyone:
            await cl.close()


async def test_killed_subscriptions_resubscribe_every_room_and_fill(
    three: tuple[list[Server], Nginx], redis: RedisServer, transport: str
) -> None:
    """Three rooms consumed on one node while their events go out without pause; the
    nodes' pub/sub connections are killed three times: each room is subscribed again and
    what was missed is filled from history (every event once, in order, no $lost)."""
    nodes, _ = three
    node = nodes[1]
    rooms = [f"kill-{k}-{transport}" for k in range(3)]
    clients = [
        Client(node.url, make_token(f"kill{k}-{transport}"), transports=(transport,))
        for k in range(3)
    ]
    boxes = [Inbox(cl, "tick", "$lost") for cl in clients]
    starts: list[tuple[str, int]] = []
    for cl in clients:
        await cl.connect()
    try:
        reconnects = metric(node, "broker_reconnects")
        async with publishing(redis.url, rooms) as record:
            for cl, room in zip(clients, rooms, strict=True):
                answer = await cl.join(room)
                starts.append((str(answer["position"][0]), int(answer["position"][1])))
            for kill in range(3):
                await boxes[0].until(lambda kill=kill: len(boxes[0].items) >= 40 * (kill + 1))
                redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
                # Back (every channel confirmed again) before the next kill.
                await until(
                    lambda kill=kill: metric(node, "broker_reconnects") >= reconnects + kill + 1,
                    10,
                    "the resubscription",
                )
            await boxes[2].until(lambda: len(boxes[2].items) >= 200, timeout=20)
        # Everything published reaches each client: wait for the last offsets.
        for k, room in enumerate(rooms):
            last = max(off for _, off in record.positions[room].values())
            await boxes[k].until(
                lambda k=k, room=room, last=last: (
                    bool(boxes[k].of("tick"))
                    and offsets(record, room, boxes[k].of("tick"))[-1] == last
                ),
                timeout=20,
            )
        for k, room in enumerate(rooms):
            got = offsets(record, room, boxes[k].of("tick"))
            after = starts[k][1]
            assert got == list(range(after + 1, last_of(record, room) + 1)), room
            assert boxes[k].of("$lost") == []
            assert clients[k].stats["duplicates"] == 0
    finally:
        for cl in clients:
            await cl.close()


def last_of(record: Published, room: str) -> int:
    return max(off for _, off in record.positions[room].values())


async def test_a_server_side_join_subscribes_its_node(
    three: tuple[list[Server], Nginx], redis: RedisServer, transport: str
) -> None:
    """The connect hook joins the session to a room (``socket.join``): its node, which
    hosts no other member, subscribes the room before the hook's catch-up reads it, and
    events published to it from outside any node reach the client."""
    nodes, _ = three
    user = f"welcomed-{transport}"
    room = f"welcomed-{user}"
    client = Client(nodes[2].url, make_token(user, welcome=True), transports=(transport,))
    inbox = Inbox(client, "tick")
    pub = AsyncPublisher(redis.url)
    try:
        async with client:
            await until(lambda: subscribers(redis, room) == 1, 5, "the subscription")
            for i in range(5):
                await pub.emit("tick", i, room=room)
            await inbox.until(lambda: inbox.of("tick") == list(range(5)))
        assert client.stats["duplicates"] == 0
    finally:
        await pub.aclose()
