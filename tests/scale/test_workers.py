"""``anywire serve --workers 2 --redis URL``: two node processes on one port, each a full
node on the shared Redis; clients on both hear each other's broadcasts, on every
transport, and SIGTERM to the parent stops both workers."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token, start_server

from .conftest import SECRET, RedisServer
from .test_broadcast import Inbox


@pytest.fixture(scope="module")
def workers(redis: RedisServer) -> Iterator[Server]:
    server = start_server(
        {"ANYWIRE_SECRET": SECRET}, args=("--workers", "2", "--redis", redis.url)
    )
    yield server
    assert server.stop() == 0  # SIGTERM to the parent ends every worker


def _node_ids(url: str, tries: int = 60) -> set[str]:
    seen: set[str] = set()
    for _ in range(tries):  # bounded: fresh connections are spread by the kernel
        with httpx.Client() as fresh:
            seen.add(fresh.get(url + "/anywire/health", timeout=5).json()["node"])
        if len(seen) == 2:
            break
    return seen


def test_two_worker_processes_are_two_nodes(workers: Server) -> None:
    assert len(_node_ids(workers.url)) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balances on Linux")
def test_connections_are_spread_over_the_workers(workers: Server) -> None:
    # One listening socket per worker: the kernel hashes each new connection to one of
    # them, whichever worker is busy (one shared socket once gave a worker 97 of 100).
    counts: Counter[str] = Counter()
    for _ in range(60):
        with httpx.Client() as fresh:
            counts[fresh.get(workers.url + "/anywire/health", timeout=5).json()["node"]] += 1
    # Binomial(60, 1/2): fewer than 12 on one side has a probability of about 3e-6.
    assert len(counts) == 2 and min(counts.values()) >= 12, counts


async def test_clients_on_both_workers_hear_each_other(workers: Server, transport: str) -> None:
    room = f"workers-{transport}"
    clients = [
        Client(workers.url, make_token(f"w{i}-{transport}"), transports=(transport,))
        for i in range(4)
    ]
    inboxes = [Inbox(c, "w") for c in clients]
    try:
        for c in clients:
            await c.connect()
            await c.join(room)
        for i, c in enumerate(clients):
            await c.call("to_room", {"room": room, "event": "w", "data": i})
        for box in inboxes:
            await box.until(lambda box=box: box.of("w") == [0, 1, 2, 3])
    finally:
        for c in clients:
            await c.close()
