"""SIGKILL the node that owns a client's session while events stream to its room and to
its user: the client resumes through the load balancer on the surviving node and gets
every event exactly once, in order, from Redis history (rooms and the user stream)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token

from .conftest import Nginx, RedisServer, start_nginx, start_node
from .test_broadcast import Inbox


@pytest.fixture(scope="module")
def cluster(redis: RedisServer) -> Iterator[tuple[list[Server], Nginx]]:
    started = [start_node(redis), start_node(redis)]
    ngx = start_nginx("round-robin.conf", [n.port for n in started])
    yield started, ngx
    ngx.stop()
    for node in started:
        node.stop()


def _owner(redis: RedisServer, nodes: list[Server], sid: str) -> Server:
    node_id = redis.cli("GET", f"aw:own:{sid}").strip()
    for node in nodes:
        import httpx

        if httpx.get(node.url + "/anywire/health", timeout=5).json()["node"] == node_id:
            return node
    raise AssertionError(f"no live node owns {sid} ({node_id!r})")


async def test_sigkill_owner_client_resumes_elsewhere_nothing_lost_or_duplicated(
    cluster: tuple[list[Server], Nginx], redis: RedisServer, transport: str
) -> None:
    nodes, ngx = cluster
    user = f"crash-{transport}"
    room = f"crash-room-{transport}"
    victim = Client(ngx.url, make_token(user), transports=(transport,), backoff_max=0.5)
    inbox = Inbox(victim, "r", "u", "$lost")
    async with victim:
        await victim.join(room)
        owner = _owner(redis, nodes, victim.sid or "")
        survivor = next(n for n in nodes if n is not owner)
        publisher = Client(survivor.url, make_token(f"pub-{transport}"), transports=("websocket",))
        async with publisher:
            total = 40
            for i in range(total):
                await publisher.call("to_room", {"room": room, "event": "r", "data": i})
                await publisher.call("to_user", {"user": user, "event": "u", "data": i})
                if i == 10:
                    await inbox.until(lambda: len(inbox.of("r")) >= 5)
                    owner.stop(sig_term=False)  # SIGKILL mid-stream
                await asyncio.sleep(0)
            await inbox.until(
                lambda: len(inbox.of("r")) >= total and len(inbox.of("u")) >= total, 30
            )
        old_sid = victim.sid
        assert inbox.of("r") == list(range(total))
        assert inbox.of("u") == list(range(total))
        assert inbox.of("$lost") == []
        assert victim.recovered is False and old_sid is not None
    owner.restart()
