"""Two nodes behind round-robin nginx on a Redis Cluster (3 masters) and on Sentinel, on
every transport: room events, events to a user across nodes, a server call to a session
on the other node, presence across nodes, and resumes that land on either node; checked
by the same exactly-once-in-order rule as on one Redis. Nothing in the nodes' logs may
say a command crossed slots (``CROSSSLOT``, a script touching a non-local key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client
from anywire.publisher import AsyncPublisher, Publisher
from tests.e2e.conftest import Server, make_token

from .conftest import Nginx, start_nginx, start_nodes
from .crossing import events_across_drops, forwarded
from .test_broadcast import Inbox

pytestmark = pytest.mark.timeout(180)

BACKENDS = ("cluster", "sentinel")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    from tests.rediscluster import start_cluster, start_sentinel

    setup = start_cluster(3) if request.param == "cluster" else start_sentinel()
    yield setup
    setup.cleanup()


@pytest.fixture(scope="module")
def pair(backend: Any) -> Iterator[list[Server]]:
    started = start_nodes(backend)
    yield started
    for node in started:
        node.stop()


@pytest.fixture(scope="module")
def rr(pair: list[Server]) -> Iterator[Nginx]:
    ngx = start_nginx("round-robin.conf", [n.port for n in pair])
    yield ngx
    ngx.stop()


def _slot_errors(nodes: list[Server]) -> list[str]:
    bad = ("CROSSSLOT", "non local key", "MOVED", "Traceback")
    return [
        line
        for node in nodes
        for line in node.log.read_text(errors="replace").splitlines()
        if any(word in line for word in bad)
    ]


async def test_rooms_users_calls_and_presence_across_nodes(
    rr: Nginx, pair: list[Server], transport: str
) -> None:
    crossed = forwarded(pair)
    room = f"cl-{transport}"
    user = f"cl-user-{transport}"
    a = Client(rr.url, make_token(user), transports=(transport,), backoff_base=0.05,
               backoff_max=0.2)  # fmt: skip
    b = Client(pair[1].url, make_token(f"cl-b-{transport}"), transports=(transport,))
    inbox = Inbox(a, "tick", "dm", "$lost", "$join")
    a.on("hello")(lambda data: "hi " + str(data))
    async with a, b:
        await a.join(room, meta={"n": 1})
        await b.join(room)
        # a hears b's join from b's node; the registry lists both (a's entry is written
        # after a's join answer, so it is waited for: docs/scale/cluster.md).
        await inbox.until(lambda: [j["sid"] for j in inbox.of("$join")] == [b.sid])
        async with asyncio.timeout(10):
            while True:
                members = await b.call("members", {"room": room})
                if sorted(m["sid"] for m in members) == sorted([a.sid, b.sid]):
                    break
                await asyncio.sleep(0.05)
        await events_across_drops(b, a, inbox, room, user, total=40, timeout=30)
        reply = await b.call("call_sid", {"sid": a.sid, "event": "hello", "data": 7})
        assert reply == {"reply": "hi 7"}
    if transport != "websocket":
        # Polls and POSTs alternated between the nodes: node requests crossed the cluster.
        assert forwarded(pair) > crossed
    assert _slot_errors(pair) == []


async def test_the_publishers_reach_clients(
    backend: Any, rr: Nginx, pair: list[Server], transport: str
) -> None:
    """Publisher and AsyncPublisher on the same URL as the nodes (the stamped script on
    both kinds: a stream they publish on is protected at a failover too)."""
    room = f"pub-{transport}"
    listener = Client(rr.url, make_token(f"pub-{transport}"), transports=(transport,))
    inbox = Inbox(listener, "news")
    sync_pub = Publisher(backend.url)
    async_pub = AsyncPublisher(backend.url)
    try:
        async with listener:
            await listener.join(room)
            for i in range(10):
                if i % 2:
                    await async_pub.emit("news", i, room=room)
                else:
                    await asyncio.to_thread(sync_pub.emit, "news", i, room=room)
            await inbox.until(lambda: len(inbox.of("news")) >= 10, 15)
            assert inbox.of("news") == list(range(10))
    finally:
        sync_pub.close()
        await async_pub.aclose()
    assert _slot_errors(pair) == []


def _stream_received(nodes: list[Server]) -> list[int]:
    return [
        int(httpx.get(n.url + "/anywire/metrics?format=json").json()["broker_stream_received"])
        for n in nodes
    ]


async def test_a_node_without_a_member_of_a_room_receives_none_of_its_events(
    backend: Any, rr: Nginx, pair: list[Server], transport: str
) -> None:
    """Interest routing on a cluster (shard channels) and on Sentinel: a member behind
    round-robin nginx; its session's node receives the room's events, the other node
    none (broker counter of stream messages, strays included); once a member joins on
    the other node, that node receives them too."""
    room = f"interest-{transport}"
    member = Client(rr.url, make_token(f"int-a-{transport}"), transports=(transport,))
    other = Client(pair[1].url, make_token(f"int-b-{transport}"), transports=(transport,))
    inbox, other_inbox = Inbox(member, "tick"), Inbox(other, "tick")
    pub = AsyncPublisher(backend.url)
    try:
        async with member:
            await member.join(room)
            before = _stream_received(pair)
            for i in range(50):
                await pub.emit("tick", i, room=room)
            await inbox.until(lambda: len(inbox.of("tick")) == 50, 15)
            assert inbox.of("tick") == list(range(50))
            delta = [n - b for n, b in zip(_stream_received(pair), before, strict=True)]
            # One node hosts the member's session (whichever nginx chose): it received
            # the 50 events; the other received nothing of the room.
            assert sorted(delta)[0] == 0 and sorted(delta)[1] >= 50, delta
            host = delta.index(max(delta))
            if host == 0:
                # Now a member on the node that had none: it receives the room too.
                async with other:
                    await other.join(room)
                    before = _stream_received(pair)
                    for i in range(50, 60):
                        await pub.emit("tick", i, room=room)
                    await other_inbox.until(lambda: len(other_inbox.of("tick")) == 10, 15)
                    assert other_inbox.of("tick") == list(range(50, 60))
                    after = _stream_received(pair)
                    assert after[1] - before[1] >= 10
            await inbox.until(lambda: len(inbox.of("tick")) == (60 if host == 0 else 50), 15)
    finally:
        await pub.aclose()
    assert _slot_errors(pair) == []
