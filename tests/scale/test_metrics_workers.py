"""``anywire serve --workers 2 --metrics prometheus --metrics-port N``: each worker is a
node with its own connections; one scrape, of either worker's ``/anywire/metrics`` or
of the parent's metrics port, sums both (prometheus-client's multiprocess mode)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, free_port, make_token, start_server
from tests.e2e.test_metrics import Samples, scrape, value

from .conftest import SECRET, RedisServer, wait_for


@pytest.fixture(scope="module")
def workers(redis: RedisServer) -> Iterator[tuple[Server, int]]:
    port = free_port()
    args = ("--workers", "2", "--redis", redis.url, "--metrics", "prometheus",
            "--metrics-port", str(port))  # fmt: skip
    server = start_server({"ANYWIRE_SECRET": SECRET}, args=args)
    yield server, port
    assert server.stop() == 0


async def test_one_scrape_sums_the_connections_of_both_workers(
    workers: tuple[Server, int],
) -> None:
    server, port = workers
    clients: list[Client] = []
    try:
        # Connections are spread by the kernel: open them until both workers hold some
        # (bounded), as each worker's own JSON figures show.
        per_worker: dict[str, int] = {}
        while len(clients) < 24:
            client = Client(server.url, make_token(f"mw{len(clients)}"), transports=("websocket",))
            await client.connect()
            clients.append(client)
            per_worker = _own_connections(server.url)
            if len(clients) >= 4 and len(per_worker) == 2 and all(per_worker.values()):
                break
        assert len(per_worker) == 2 and all(per_worker.values()), per_worker
        total = len(clients)

        def summed(url: str) -> float:
            return value(scrape(url), "anywire_connections", transport="websocket", namespace="/")

        # Each worker syncs its plain counters once a second; the connection gauges move
        # with the connections themselves.
        assert summed(server.url) == total
        assert summed(f"http://127.0.0.1:{port}") == total
        wait_for(
            lambda: value(scrape(server.url), "anywire_sessions") == total,
            what="both workers' sessions in one scrape",
        )
        # The broker's side, through Redis: publishes of one worker received by both
        # (both host a member of the room: interest routing sends a room's events only
        # to the workers that do), the delivery latency sampled (1 in 16 envelopes), the
        # broker up on both.
        for client in clients:
            await client.join("on-both")
        before = scrape(server.url)
        for i in range(32):
            await clients[0].call("to_room", {"room": "on-both", "event": "e", "data": i})

        def brokered(s: Samples) -> bool:
            published = value(s, "anywire_broker_published_total")
            received = value(s, "anywire_broker_received_total")
            return (
                published >= value(before, "anywire_broker_published_total") + 32
                and received >= value(before, "anywire_broker_received_total") + 64
                and value(s, "anywire_delivery_latency_seconds_count") >= 2
            )

        wait_for(lambda: brokered(scrape(server.url)), what="broker figures of both workers")
        assert value(scrape(server.url), "anywire_broker_up") == 1
    finally:
        for client in clients:
            await client.close()
    wait_for(lambda: summed(f"http://127.0.0.1:{port}") == 0, what="connections gone")


def _own_connections(url: str, tries: int = 40) -> dict[str, int]:
    """The live sessions each worker reports of itself (by node id), asked over fresh
    connections until both workers answered (bounded)."""
    by_node: dict[str, int] = {}
    for _ in range(tries):
        with httpx.Client() as fresh:
            health = fresh.get(url + "/anywire/health", timeout=5).json()
        by_node[health["node"]] = health["sessions"]
        if len(by_node) == 2:
            break
    return by_node


def test_a_redis_outage_shows_in_the_broker_metrics(
    workers: tuple[Server, int], redis: RedisServer
) -> None:
    """Last in this module (it restarts the module's Redis): the broker's state."""
    _, port = workers
    own = f"http://127.0.0.1:{port}"  # the parent's port: no worker, no Redis involved
    down = {"state": "down"}
    before = scrape(own)
    redis.kill()
    try:
        wait_for(lambda: value(scrape(own), "anywire_broker_up") == 0, what="broker down")
        wait_for(
            lambda: (
                value(scrape(own), "anywire_broker_state_changes_total", **down)
                >= value(before, "anywire_broker_state_changes_total", **down) + 2
            ),
            what="both workers saw Redis go",
        )
    finally:
        redis.start()
    wait_for(lambda: value(scrape(own), "anywire_broker_up") == 1, 20, what="broker up again")
    after = scrape(own)
    grew = value(after, "anywire_broker_reconnects_total") - value(
        before, "anywire_broker_reconnects_total"
    )
    assert grew >= 2  # each worker's subscription came back
