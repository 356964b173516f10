"""Two nodes on Redis: an admin connection to one node receives both nodes' snapshots
(each node sends its own through Redis), each with that node's sessions, rooms and
broker health; and none of them counts the admin session itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token

from .conftest import RedisServer, start_nodes
from .test_broadcast import Inbox

TOKEN = "scale-admin-token-0123456789"


@pytest.fixture(scope="module")
def pair(redis: RedisServer) -> Iterator[list[Server]]:
    env = {"ANYWIRE_ADMIN_TOKEN": TOKEN, "AW_ADMIN_INTERVAL": "0.5"}
    started = start_nodes(redis, env=env)
    yield started
    for node in started:
        node.stop()


def _rooms(snap: dict[str, Any]) -> dict[str, int]:
    return {r["room"]: r["size"] for r in snap["rooms"]["top"]}


def _node_id(server: Server) -> str:
    return str(httpx.get(server.url + "/anywire/health").json()["node"])


async def test_one_admin_connection_sees_every_node(pair: list[Server], transport: str) -> None:
    a, b = pair
    id_a, id_b = _node_id(a), _node_id(b)
    admin = Client(a.url, TOKEN, namespace="/$admin", transports=(transport,))
    inbox = Inbox(admin, "snapshot")
    room = f"two-nodes-{transport}"
    on_a = Client(a.url, make_token(f"na-{transport}"), transports=("sse",))
    on_b = Client(b.url, make_token(f"nb-{transport}"), transports=("websocket",))

    def latest() -> dict[str, Any]:
        return {s["node"]: s for s in inbox.of("snapshot")}

    def both_seen() -> bool:
        snaps = latest()
        if set(snaps) != {id_a, id_b}:
            return False
        a, b = snaps[id_a], snaps[id_b]
        return (
            a["transports"]["sse"] >= 1
            and b["transports"]["websocket"] >= 1
            and _rooms(a).get(room) == 1
            and _rooms(b).get(room) == 1
        )

    async with admin, on_a, on_b:
        await on_a.join(room)
        await on_b.join(room)
        await inbox.until(both_seen)
        snaps = latest()
        assert admin.transport == transport
    for node in (id_a, id_b):
        broker = snaps[node]["broker"]
        assert broker["kind"] == "redis" and broker["state"] == "ok"
        assert broker["counters"]["published"] >= 0 and "forwarded_in" in broker["cluster"]
    # Each room member is counted on its own node; the admin session (on a) nowhere:
    # only SSE sessions (on_a's) were ever opened on a besides it.
    assert snaps[id_a]["transports"]["websocket"] == snaps[id_a]["transports"]["longpoll"] == 0
    assert all(r["ns"] == "/" for s in snaps.values() for r in s["rooms"]["top"])
