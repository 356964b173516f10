"""The server HTTP API on two nodes sharing Redis (issue #15): a publish on node A
reaches a client on node B, a repeated idempotency key is published once whichever
node it reaches, and presence read on A lists B's members."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token
from tests.e2e.test_publish_api import Inbox

from .conftest import RedisServer, start_node

KEY = "nodes-api-key-" + secrets.token_hex(8)
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def api_nodes(redis: RedisServer) -> Iterator[list[Server]]:
    started = [start_node(redis, env={"ANYWIRE_API_KEY": KEY}) for _ in range(2)]
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
