"""Three nodes behind nginx round robin: a broadcast from any node reaches clients on
every node, whichever node their transport requests land on."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token

from .conftest import Nginx, RedisServer, start_nginx, start_nodes
from .test_broadcast import Inbox


@pytest.fixture(scope="module")
def three(redis: RedisServer) -> Iterator[tuple[list[Server], Nginx]]:
    started = start_nodes(redis, 3)
    ngx = start_nginx("round-robin-3.conf", [n.port for n in started])
    yield started, ngx
    ngx.stop()
    for node in started:
        node.stop()


async def test_broadcast_from_any_of_three_nodes_reaches_every_client(
    three: tuple[list[Server], Nginx], transport: str
) -> None:
    nodes, ngx = three
    room = f"three-{transport}"
    direct = [
        Client(n.url, make_token(f"d{i}-{transport}"), transports=(transport,))
        for i, n in enumerate(nodes)
    ]
    balanced = [
        Client(ngx.url, make_token(f"l{i}-{transport}"), transports=(transport,))
        for i in range(3)
    ]
    everyone = direct + balanced
    inboxes = [Inbox(c, "hi") for c in everyone]
    for c in everyone:
        await c.connect()
    try:
        for c in everyone:
            await c.join(room)
        for i, sender in enumerate(direct):  # one publisher on each node
            await sender.call("to_room", {"room": room, "event": "hi", "data": i})
        for box in inboxes:
            await box.until(lambda box=box: box.of("hi") == [0, 1, 2])
        sessions = [httpx.get(n.url + "/anywire/health").json()["sessions"] for n in nodes]
        assert all(s >= 1 for s in sessions) and sum(sessions) == 6
    finally:
        for c in everyone:
            await c.close()
