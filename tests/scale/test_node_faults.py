"""Node faults behind nginx round robin, on every transport, each a regression of issue #12:

3. a long-poll forwarded to a node that then dies waited up to 30 s: a frozen or killed
   node is now noticed within the heartbeat bound, forwarded requests included;
4. a graceful stop took 6 s, logged tracebacks and refused other nodes' sessions: it ends
   within its bound, logs nothing, and forwards meanwhile;
6. an emit that failed during a Redis pause could not be retried safely: with ``id=`` it
   is delivered once;
7. events to one session and pending server calls died with the session's node: they go
   on in the session's stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from anywire.clients.python import Client, EventInfo
from tests.e2e.conftest import TRANSPORTS, Server, make_token, start_servers
from tests.together import Meeting, Together
from tests.waiting import until

from .conftest import Nginx, RedisServer, spawn_node, start_nginx, start_nodes
from .test_node_crash import _owner

# Fast failure detection: a peer silent for 1 + 1.5 s is dead, a poll is held 1 s, a node
# that misses its 0.2 s heartbeat for 5 beats is dead.
FAST = {
    "AW_PING_INTERVAL": "1",
    "AW_PING_TIMEOUT": "1.5",
    "AW_POLL_WINDOW": "1",
    "AW_NODE_HEARTBEAT": "0.2",
}
DETECTION = 2.5  # ping_interval + ping_timeout = poll_window + ping_timeout


@pytest.fixture(scope="module")
def cluster(redis: RedisServer) -> Iterator[tuple[list[Server], Nginx]]:
    started = start_nodes(redis, env=FAST)
    ngx = start_nginx("round-robin.conf", [n.port for n in started])
    yield started, ngx
    ngx.stop()
    for node in started:
        node.stop()


class Record:
    """Offsets of the events named ``event``, and the calls answered."""

    def __init__(self, client: Client, event: str) -> None:
        self.offsets: list[int] = []
        self.data: list[Any] = []
        self.answered: list[Any] = []
        self.asked_at: list[int] = []  # stream offsets of the calls (same stream as events)
        self.changed = asyncio.Event()
        client.on(event)(self._event)
        client.on("ask")(self._ask)

    def _event(self, data: Any, info: EventInfo) -> None:
        assert info.offset is not None
        self.offsets.append(info.offset[2])
        self.data.append(data)
        self.changed.set()

    def _ask(self, data: Any, info: EventInfo) -> Any:
        assert info.offset is not None and info.id == info.offset[2]
        self.answered.append(data)
        self.asked_at.append(info.offset[2])
        return data

    async def until(self, check: Any, timeout: float = 15.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not check():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out; received {self.data}") from None


class Pinned:
    """Per-transport runs whose clients (through nginx) all have their session on one
    node, so one fault of that node serves the three: each client is reconnected until
    that node owns its session; the first run's owner is the one."""

    PIN_TRIES = 12  # nginx round-robins: each try lands on the pinned node about half the time

    def __init__(self, cluster: tuple[list[Server], Nginx], redis: RedisServer) -> None:
        (self.nodes, self.ngx), self.redis = cluster, redis
        self.owner: Server | None = None  # the pinned node

    async def _pinned(self, user: str, transport: str, event: str) -> tuple[Client, Record]:
        for _ in range(self.PIN_TRIES):
            client = Client(self.ngx.url, make_token(user), transports=(transport,),
                            backoff_max=0.3)  # fmt: skip
            record = Record(client, event)
            await client.connect()
            owner = _owner(self.redis, self.nodes, client.sid or "")
            self.owner = self.owner or owner
            if owner is self.owner:
                return client, record
            await client.close()
            # A connect may take an even number of nginx's round-robin turns (long-poll:
            # negotiate, poll...), landing on the same node every time: a random extra turn.
            if random.random() < 0.5:
                httpx.get(self.ngx.url + "/anywire/health", timeout=5)
        raise AssertionError(f"{transport}: no session on the pinned node in {self.PIN_TRIES}")

    @property
    def survivor(self) -> Server:
        return next(n for n in self.nodes if n is not self.owner)


class Frozen(Pinned):
    """Every transport's frozen-node run (own client, user, room and publisher each) on
    the pinned node: SIGSTOPped once every run has its first events, SIGCONTed once every
    run noticed and published the rest. One freeze serves the three transports."""

    def __init__(self, cluster: tuple[list[Server], Nginx], redis: RedisServer) -> None:
        super().__init__(cluster, redis)
        self.stopped = 0.0  # when it was frozen (monotonic)
        self.freeze = Meeting(TRANSPORTS, self._freeze)
        self.thaw = Meeting(TRANSPORTS, self._thaw)

    async def _freeze(self) -> None:
        assert self.owner is not None
        self.stopped = time.monotonic()
        os.kill(self.owner.proc.pid, signal.SIGSTOP)  # alive to TCP, silent to everyone

    async def _thaw(self) -> None:
        # Thawed (a node starved for a while): nginx, which has no health checks, sends
        # every other request there meanwhile, so each client settles once it answers
        # again, on whichever node.
        if self.owner is not None:
            os.kill(self.owner.proc.pid, signal.SIGCONT)

    async def run(self, transport: str) -> tuple[list[int], int, float]:
        room = f"frozen-{transport}"
        client, record = await self._pinned(f"frozen-{transport}", transport, "n")
        try:
            await client.join(room)
            pub = Client(self.survivor.url, make_token(f"frozen-pub-{transport}"),
                         transports=("websocket",))  # fmt: skip
            async with pub:
                for i in range(1, 4):
                    await pub.call("publish", {"room": room, "event": "n", "data": i})
                await record.until(lambda: len(record.offsets) == 3)
                await self.freeze.meet(transport)
                try:
                    await until(lambda: client.state != "connected", 10, "the drop", poll=0.02)
                    noticed = time.monotonic() - self.stopped
                    for i in range(4, 7):
                        await pub.call("publish", {"room": room, "event": "n", "data": i})
                finally:
                    await self.thaw.meet(transport)
                await record.until(lambda: len(record.offsets) == 6, 20)
            return record.offsets, client.stats["duplicates"], noticed
        finally:
            await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def frozen(
    cluster: tuple[list[Server], Nginx], redis: RedisServer
) -> AsyncIterator[Together[tuple[list[int], int, float]]]:
    runs = Frozen(cluster, redis)
    together = Together(TRANSPORTS, runs.run)
    yield together
    await together.aclose()
    if runs.owner is not None:
        os.kill(runs.owner.proc.pid, signal.SIGCONT)  # a run that failed frozen: never leave it


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_a_frozen_node_is_noticed_within_the_heartbeat_bound(
    frozen: Together[tuple[list[int], int, float]], transport: str
) -> None:
    offsets, duplicates, noticed = await frozen.result(transport, 60)
    assert offsets == [1, 2, 3, 4, 5, 6] and duplicates == 0
    assert noticed < DETECTION + 1.0, f"{transport}: the frozen node took {noticed:.2f} s"


async def test_a_poll_held_for_a_node_that_dies_is_answered_within_a_few_heartbeats(
    redis: RedisServer,
) -> None:
    """The poll was forwarded before the crash: the node that holds it learns of the
    death from the heartbeats and answers 4007 (the client starts a fresh session and
    catches up), instead of waiting out the poll window and more."""
    a, b = start_nodes(redis, poll_window=10, env={"AW_NODE_HEARTBEAT": "0.2"})
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            auth = {"Authorization": f"Bearer {make_token('doomed-poll')}"}
            neg = (await http.post(b.url + "/anywire/negotiate", json={}, headers=auth)).json()
            opened = await http.get(b.url + "/anywire/poll", params={"ticket": neg["ticket"]})
            assert opened.status_code == 200
            before = _metric(b, "forwarded_in")
            held = asyncio.ensure_future(
                http.get(a.url + "/anywire/poll", headers={"X-Anywire-Token": neg["token"]})
            )
            await until(
                lambda: _metric(b, "forwarded_in") > before, 5, "b to hold the poll", poll=0.02
            )
            killed = time.monotonic()
            b.stop(sig_term=False)
            response = await held
            took = time.monotonic() - killed
        assert response.status_code == 410, (response.status_code, response.content, took,
                                             a.log.read_text()[-2000:])  # fmt: skip
        assert json.loads(response.content)[0]["c"] == 4007
        assert took < 2.5, f"the held poll was answered {took:.2f} s after its node died"
    finally:
        a.stop()
        b.stop()


class Crash(Pinned):
    """Every transport's crash run (own client, user and publisher each) on the pinned
    node: SIGKILLed once every run has published 11 events (5 of them received), restarted
    once every run is done (the module's later tests need both nodes). One crash serves
    the three transports."""

    TOTAL = 30

    def __init__(self, cluster: tuple[list[Server], Nginx], redis: RedisServer) -> None:
        super().__init__(cluster, redis)
        self.kill = Meeting(TRANSPORTS, self._kill)
        self.restart = Meeting(TRANSPORTS, self.revive)

    async def _kill(self) -> None:
        assert self.owner is not None
        self.owner.stop(sig_term=False)  # SIGKILL: the sessions' node is gone

    async def revive(self) -> None:
        if self.owner is not None and self.owner.proc.poll() is not None:
            await asyncio.to_thread(self.owner.restart)

    async def run(self, transport: str) -> tuple[Record, list[Any], bool, int]:
        try:
            client, record = await self._pinned(f"own-{transport}", transport, "s")
            try:
                sid = client.sid or ""
                pub = Client(self.survivor.url, make_token(f"own-pub-{transport}"),
                             transports=("websocket",))  # fmt: skip
                async with pub:
                    calls = []
                    for i in range(self.TOTAL):
                        await pub.call("publish", {"to": sid, "event": "s", "data": i},
                                       timeout=10)  # fmt: skip
                        if i % 6 == 0:
                            ask = {"sid": sid, "event": "ask", "data": i, "timeout": 15}
                            calls.append(
                                asyncio.ensure_future(pub.call("call_sid", ask, timeout=20))
                            )
                        if i == 10:
                            await record.until(lambda: len(record.data) >= 5)
                            await self.kill.meet(transport)
                    await record.until(lambda: len(record.data) >= self.TOTAL, 20)
                    replies = await asyncio.gather(*calls)
                return record, replies, client.sid == sid, client.stats["duplicates"]
            finally:
                await client.close()
        finally:
            await self.restart.meet(transport)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def crash(
    cluster: tuple[list[Server], Nginx], redis: RedisServer
) -> AsyncIterator[Together[tuple[Record, list[Any], bool, int]]]:
    runs = Crash(cluster, redis)
    together = Together(TRANSPORTS, runs.run)
    yield together
    await together.aclose()
    await runs.revive()  # a run that failed before the restart: never leave a node dead


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_events_to_a_session_and_calls_survive_the_crash_of_its_node(
    crash: Together[tuple[Record, list[Any], bool, int]], transport: str
) -> None:
    record, replies, same_sid, duplicates = await crash.result(transport, 90)
    total = Crash.TOTAL
    assert record.data == list(range(total)) and record.offsets == sorted(record.offsets)
    # Events and calls share the session's stream: every offset once, none missing.
    everything = sorted(record.offsets + record.asked_at)
    assert everything == list(range(1, len(everything) + 1))
    assert replies == [{"reply": i} for i in range(0, total, 6)]
    assert sorted(record.answered) == list(range(0, total, 6))  # each answered once
    assert same_sid and duplicates == 0


async def test_a_stopping_node_drains_within_its_bound_forwards_meanwhile_and_logs_nothing(
    redis: RedisServer,
) -> None:
    a, b = start_servers([
        spawn_node(redis, None, 2.0, {**FAST, "AW_SHUTDOWN_TIMEOUT": "3"}),
        spawn_node(redis, None, 2.0, FAST),
    ])
    ngx = start_nginx("round-robin.conf", [a.port, b.port])
    room = "drained"
    clients = [
        Client(ngx.url, make_token(f"drain-{t}"), transports=(t,), backoff_max=0.3)
        for t in ("websocket", "sse", "longpoll")
    ]
    records = [Record(c, "n") for c in clients]
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            auth = {"Authorization": f"Bearer {make_token('drain-poller')}"}
            # A long-poll session owned by b, whose requests may land on a.
            neg = (await http.post(b.url + "/anywire/negotiate", json={}, headers=auth)).json()
            assert (await http.get(b.url + "/anywire/poll", params={"ticket": neg["ticket"]})
                    ).status_code == 200  # fmt: skip
            # A WebSocket on a that stops reading with 20 MB owed to it: a's writer is stuck,
            # so the drain waits out half its budget; meanwhile a must still forward.
            stuck = await _stuck_websocket(http, a)
            for client in clients:
                await client.connect()
                await client.join(room)
            async with Client(b.url, make_token("drain-pub"), transports=("websocket",)) as pub:
                publishing = asyncio.ensure_future(_publish_for(pub, room, seconds=4.0))
                await asyncio.sleep(0.5)
                began = time.monotonic()
                a.proc.terminate()
                await asyncio.sleep(0.3)  # inside the drain
                ping = await http.post(
                    a.url + "/anywire/send",
                    content=b'{"t":"ping"}',
                    headers={"X-Anywire-Token": neg["token"], "Content-Type": "application/json"},
                )
                assert ping.status_code == 204  # forwarded to b, not refused
                await asyncio.to_thread(a.proc.wait, 10)
                stopped = time.monotonic() - began
                assert stopped > 1.0  # the stuck WebSocket did hold the drain (half of 3 s)
                sent = await publishing
                for record in records:
                    await record.until(lambda r=record: len(r.data) == sent, 20)  # type: ignore[misc]
            await stuck.close()
        for client, record in zip(clients, records, strict=True):
            assert record.data == list(range(sent)), client.transports
            assert client.stats["duplicates"] == 0
        assert stopped < 3.0 + 1.0, f"the drain took {stopped:.2f} s"
        log = a.log.read_text(errors="replace")
        for bad in ("Traceback", "ERROR", "not shared", "task failed"):
            assert bad not in log, log[-3000:]
    finally:
        for client in clients:
            await client.close()
        ngx.stop()
        a.stop()
        b.stop()


class Pause:
    """Every transport's retried-emit run (own client, room and id each) on the module's
    nodes; Redis SIGSTOPped once every run has joined, SIGCONTed once every run's publish
    has failed: one pause serves the three transports."""

    def __init__(self, cluster: tuple[list[Server], Nginx], redis: RedisServer) -> None:
        (self.nodes, self.ngx), self.redis = cluster, redis
        self.stop = Meeting(TRANSPORTS, lambda: self._signal(signal.SIGSTOP))
        self.cont = Meeting(TRANSPORTS, lambda: self._signal(signal.SIGCONT))

    async def _signal(self, sig: signal.Signals) -> None:
        assert self.redis.proc is not None
        os.kill(self.redis.proc.pid, sig)

    async def run(self, transport: str) -> tuple[Record, Any]:
        room = f"paused-{transport}"
        client = Client(self.ngx.url, make_token(f"paused-{transport}"), transports=(transport,))
        record = Record(client, "n")
        async with client, Client(self.nodes[0].url, make_token(f"paused-pub-{transport}")) as pub:
            await client.join(room)
            publish = {"room": room, "event": "n", "data": "once", "id": f"once-{transport}"}
            await self.stop.meet(transport)
            try:
                failed = await pub.call("publish", publish, timeout=20)
            finally:
                await self.cont.meet(transport)
            assert "unavailable" in failed  # the caller is told; "maybe" says if it may be out
            retried = await pub.call("publish", publish, timeout=10)
            again = await pub.call("publish", publish, timeout=10)  # a third try: still once
            assert retried["pos"] == again["pos"]
            await pub.call("publish", {"room": room, "event": "n", "data": "after"}, timeout=10)
            await record.until(lambda: "after" in record.data, 15)
        return record, retried


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pause(
    cluster: tuple[list[Server], Nginx], redis: RedisServer
) -> AsyncIterator[Together[tuple[Record, Any]]]:
    together = Together(TRANSPORTS, Pause(cluster, redis).run)
    yield together
    await together.aclose()
    if redis.proc is not None:
        os.kill(redis.proc.pid, signal.SIGCONT)  # a run that failed paused: never leave it


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.asyncio(loop_scope="module")
async def test_an_emit_retried_with_its_id_after_a_redis_pause_is_delivered_once(
    pause: Together[tuple[Record, Any]], transport: str
) -> None:
    record, retried = await pause.result(transport, 60)
    assert record.data == ["once", "after"], record.data
    assert record.offsets[0] == retried["pos"][2]


async def _publish_for(pub: Client, room: str, seconds: float) -> int:
    """Publish numbered events for ``seconds``; returns how many."""
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await pub.call("publish", {"room": room, "event": "n", "data": n}, timeout=10)
        n += 1
        await asyncio.sleep(0.02)
    return n


async def _stuck_websocket(http: httpx.AsyncClient, node: Server) -> Any:
    """A WebSocket session on ``node`` with 20 MB of events owed that reads nothing (more
    than loopback's socket buffers hold: the server's writer blocks)."""
    auth = {"Authorization": f"Bearer {make_token('stuck')}"}
    neg = (await http.post(node.url + "/anywire/negotiate", json={"codecs": ["json"]},
                           headers=auth)).json()  # fmt: skip
    ws = await websockets.connect(
        node.url.replace("http", "ws") + "/anywire/ws", max_size=None, compression=None
    )
    await ws.send(json.dumps({"t": "connect", "ticket": neg["ticket"]}))
    await ws.recv()  # hello
    await ws.send(json.dumps({"t": "event", "s": 1, "id": 1, "e": "owe",
                              "d": {"n": 400, "size": 50_000}}))  # fmt: skip
    ws.transport.pause_reading()  # and never read again
    return ws


def _metric(node: Server, name: str) -> int:
    return int(httpx.get(node.url + "/anywire/metrics", timeout=5).json()[name])
