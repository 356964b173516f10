"""The server HTTP API on two nodes sharing Redis (issue #15): a publish on node A
reaches a client on node B, a repeated idempotency key is published once whichever
node it reaches, presence read on A lists B's members, and a disconnect sent to A
closes sessions on B."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token
from tests.e2e.test_publish_api import Inbox
from tests.e2e.test_publish_api_disconnect import ended

from .conftest import RedisServer, start_nodes

KEY = "nodes-api-key-" + secrets.token_hex(8)
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def api_nodes(redis: RedisServer) -> Iterator[list[Server]]:
    started = start_nodes(redis, env={"ANYWIRE_API_KEY": KEY})
    yield started
    for node in started:
        node.stop()


async def test_publish_on_a_reaches_b_once_per_key(api_nodes: list[Server], transport: str) -> None:
    a, b = api_nodes
    tag = secrets.token_hex(3)
    room = f"nodes-{tag}"
    client = Client(b.url, token=make_token(f"n-{tag}"), transports=(transport,))
    inbox = Inbox(client, "news")
    await client.connect()
    try:
        await client.join(room)
        body = {"event": "news", "room": room, "data": "first", "idempotency_key": tag}
        first = httpx.post(a.url + "/anywire/publish", json=body, headers=AUTH)
        assert first.status_code == 200, first.text
        # The same key again, on the other node: Redis remembers it, nothing is published.
        again = httpx.post(b.url + "/anywire/publish", json={**body, "data": "x"}, headers=AUTH)
        assert again.json() == first.json()
        end = {"event": "news", "room": room, "data": "end"}
        assert httpx.post(a.url + "/anywire/publish", json=end, headers=AUTH).status_code == 200
        assert await inbox.wait(2) == ["first", "end"]
        seen = httpx.get(a.url + "/anywire/api/presence", params={"room": room}, headers=AUTH)
        assert [m["sid"] for m in seen.json()["members"]] == [client.sid]
    finally:
        await client.close()


async def test_disconnect_on_a_closes_sessions_on_b(
    api_nodes: list[Server], transport: str
) -> None:
    a, b = api_nodes
    tag = secrets.token_hex(3)
    user = f"dc-{tag}"
    on_b = [Client(b.url, token=make_token(user), transports=(transport,)) for _ in range(2)]
    on_a = Client(a.url, token=make_token(user), transports=(transport,))
    for client in (*on_b, on_a):
        await client.connect()
    try:
        url = a.url + "/anywire/api/disconnect"
        one = httpx.post(url, json={"sid": on_b[0].sid, "reason": "bye"}, headers=AUTH)
        assert one.json() == {"ok": True, "disconnected": 1, "nodes_unanswered": 0}
        closed = await ended(on_b[0])
        assert (closed.code, closed.reason) == (4500, "bye")
        assert on_b[1].state == on_a.state == "connected"
        every = httpx.post(url, json={"user": user}, headers=AUTH)  # on A, and on B
        assert every.json() == {"ok": True, "disconnected": 2, "nodes_unanswered": 0}
        for client in (on_b[1], on_a):
            assert (await ended(client)).code == 4500
    finally:
        for client in (*on_b, on_a):
            await client.close()


async def test_a_batch_goes_out_in_item_order(api_nodes: list[Server], transport: str) -> None:
    """A batch's items are issued together (one Redis pipeline): two rooms interleaved,
    each room's offsets in item order, every item delivered once, in order, on node B."""
    a, b = api_nodes
    tag = secrets.token_hex(3)
    rooms = [f"batch-{tag}-0", f"batch-{tag}-1"]
    client = Client(b.url, token=make_token(f"b-{tag}"), transports=(transport,))
    inbox = Inbox(client, "news")
    await client.connect()
    try:
        for room in rooms:
            await client.join(room)
        items = [{"event": "news", "room": rooms[i % 2], "data": i} for i in range(100)]
        before = httpx.get(a.url + "/anywire/metrics").json()
        answer = httpx.post(a.url + "/anywire/publish", json={"items": items}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        after = httpx.get(a.url + "/anywire/metrics").json()
        assert after["broker_published"] - before["broker_published"] == 100
        # One pipeline per lane the two rooms fall in, not one round trip per item.
        assert 1 <= after["broker_pipelines"] - before["broker_pipelines"] <= 2
        results = answer.json()["results"]
        for parity, room in enumerate(rooms):
            positions = [r["pos"] for r in results[parity::2]]
            assert [p[0] for p in positions] == [f"room:/:{room}"] * 50
            assert [p[2] for p in positions] == list(range(1, 51))
        got = await inbox.wait(100)
        assert sorted(got) == list(range(100))  # each once
        for parity in (0, 1):
            assert [x for x in got if x % 2 == parity] == list(range(parity, 100, 2))
    finally:
        await client.close()
