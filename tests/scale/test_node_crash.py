"""SIGKILL the node that owns a client's session while events stream to its room and to
its user: the client resumes through the load balancer on the surviving node and gets
every event exactly once, in order, from Redis history (rooms and the user stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from anywire.clients.python import Client
from tests.e2e.conftest import TRANSPORTS, Server, make_token
from tests.together import Meeting, Together

from .conftest import Nginx, RedisServer, start_nginx, start_nodes
from .test_broadcast import Inbox


@pytest.fixture(scope="module")
def cluster(redis: RedisServer) -> Iterator[tuple[list[Server], Nginx]]:
    started = start_nodes(redis)
    ngx = start_nginx("round-robin.conf", [n.port for n in started])
    yield started, ngx
    ngx.stop()
    for node in started:
        node.stop()


def _owner(redis: RedisServer, nodes: list[Server], sid: str) -> Server:
    node_id = redis.cli("GET", f"aw:own:{sid}").strip()
    for node in nodes:
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


class Crash:
    """Every transport's presence run (own users and room each) on the module's nodes; one
    SIGKILL of node 1 once every run has its members there, one restart once every run
    has seen their leaves."""

    def __init__(self, nodes: list[Server]) -> None:
        self.nodes = nodes
        self.kill = Meeting(TRANSPORTS, self._kill)
        self.restart = Meeting(TRANSPORTS, self._restart)

    async def _kill(self) -> None:
        self.nodes[1].stop(sig_term=False)  # SIGKILL: b and c vanish without a word

    async def _restart(self) -> None:
        await asyncio.to_thread(self.nodes[1].restart)

    async def run(self, transport: str) -> None:
        nodes = self.nodes
        room = f"presence-{transport}"
        a = Client(nodes[0].url, make_token(f"pa-{transport}"), transports=(transport,))
        b = Client(nodes[1].url, make_token(f"pb-{transport}"), transports=(transport,))
        c = Client(nodes[1].url, make_token(f"pc-{transport}"), transports=(transport,))
        inbox = Inbox(a, "$join", "$leave")
        async with a:
            await a.join(room, {"n": "a"})
            async with b, c:
                answer = await b.join(room, {"n": "b"})
                # The join answer lists members of every node.
                assert {m["sid"] for m in answer["presence"]} == {a.sid, b.sid}
                await inbox.until(lambda: [j["sid"] for j in inbox.of("$join")] == [b.sid])
                assert inbox.of("$join")[0]["meta"] == {"n": "b"}
                who = await a.call("members", {"room": room})
                assert sorted(m["sid"] for m in who) == sorted([a.sid, b.sid])
                await b.leave(room)
                await inbox.until(lambda: [x["sid"] for x in inbox.of("$leave")] == [b.sid])
                await b.join(room)
                await c.join(room)
                await inbox.until(lambda: len(inbox.of("$join")) == 3)
                assert len(await a.call("members", {"room": room})) == 3
                await self.kill.meet(transport)
                # Documented bound: 3 heartbeats (3 s) until the node counts as dead, plus
                # one heartbeat until a live node removes its entries with $leave.
                await inbox.until(lambda: len(inbox.of("$leave")) == 3, 10)
                assert {x["sid"] for x in inbox.of("$leave")[1:]} == {b.sid, c.sid}
                assert [m["sid"] for m in await a.call("members", {"room": room})] == [a.sid]
        await self.restart.meet(transport)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def crash(cluster: tuple[list[Server], Nginx]) -> AsyncIterator[Together[None]]:
    together = Together(TRANSPORTS, Crash(cluster[0]).run)
    yield together
    await together.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_presence_converges_after_joins_leaves_and_a_node_crash(
    crash: Together[None], transport: str
) -> None:
    """Joins, a leave and a rejoin seen across nodes; then node 1 is SIGKILLed under
    every transport's run at once (one crash serves the three: tests/together.py) and
    its members' presence is removed with ``$leave``."""
    await crash.result(transport, 60)


async def test_a_node_stopping_normally_removes_its_presence(
    cluster: tuple[list[Server], Nginx], redis: RedisServer
) -> None:
    nodes, _ = cluster
    room = "presence-graceful"
    a = Client(nodes[0].url, make_token("ga"), transports=("websocket",))
    b = Client(nodes[1].url, make_token("gb"), transports=("websocket",), reconnect=False)
    inbox = Inbox(a, "$leave")
    async with a:
        await a.join(room)
        await b.connect()
        await b.join(room)
        b_sid = b.sid
        nodes[1].stop()  # SIGTERM: its sessions end, their presence is removed at once
        await inbox.until(lambda: [x["sid"] for x in inbox.of("$leave")] == [b_sid], 5)
        assert [m["sid"] for m in await a.call("members", {"room": room})] == [a.sid]
        assert redis.cli("HLEN", f"aw:pres:{{/:{room}}}").strip() == "1"
        await b.close()
    nodes[1].restart()


async def test_a_stopping_node_answers_the_polls_it_forwarded_at_once(
    redis: RedisServer,
) -> None:
    """A long-poll held on node A for a session of node B is answered as soon as A shuts
    down, instead of holding A's shutdown for the poll window: 204, nothing yet (the
    client polls again, elsewhere), not an error that would drop its connection."""
    a, b = start_nodes(redis, poll_window=10)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            auth = {"Authorization": f"Bearer {make_token('held-poll')}"}
            neg = (await http.post(b.url + "/anywire/negotiate", json={}, headers=auth)).json()
            opened = await http.get(b.url + "/anywire/poll", params={"ticket": neg["ticket"]})
            assert opened.status_code == 200
            before = _metric(b, "forwarded_in")
            held = asyncio.ensure_future(
                http.get(a.url + "/anywire/poll", headers={"X-Anywire-Token": neg["token"]})
            )
            deadline = asyncio.get_running_loop().time() + 5
            while _metric(b, "forwarded_in") == before:  # until the owner holds it
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert not held.done()
            started = asyncio.get_running_loop().time()
            await asyncio.to_thread(a.stop)
            assert asyncio.get_running_loop().time() - started < 5
            response = await held
        assert response.status_code == 204
    finally:
        a.stop()
        b.stop()


def _metric(node: Server, name: str) -> int:
    return int(httpx.get(node.url + "/anywire/metrics", timeout=5).json()[name])
