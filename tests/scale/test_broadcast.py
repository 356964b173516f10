"""Two nodes on one Redis: broadcasts from any node reach every node's sessions, on every
transport; the health endpoint reports the broker."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token


class Inbox:
    """Events a client received, with a bounded wait for a condition."""

    def __init__(self, client: Client, *events: str) -> None:
        self.items: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        for name in events:
            client.on(name)(self._recorder(name))

    def _recorder(self, name: str) -> Any:
        def record(data: Any) -> None:
            self.items.append((name, data))
            self.changed.set()

        return record

    def of(self, name: str) -> list[Any]:
        return [d for n, d in self.items if n == name]

    async def until(self, check: Any, timeout: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not check():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out; received {self.items}") from None


def test_health_reports_the_redis_broker(nodes: list[Server]) -> None:
    for node in nodes:
        body = httpx.get(node.url + "/anywire/health", timeout=5).json()
        assert body["broker"] == "ok" and body["broker_kind"] == "redis"
    assert len({httpx.get(n.url + "/anywire/health").json()["node"] for n in nodes}) == 2


async def test_room_user_and_all_broadcasts_reach_every_node(
    nodes: list[Server], transport: str
) -> None:
    room = f"bcast-{transport}"
    a = Client(nodes[0].url, make_token(f"ba-{transport}"), transports=(transport,))
    b = Client(nodes[1].url, make_token(f"bb-{transport}"), transports=(transport,))
    inbox_a, inbox_b = Inbox(a, "news", "dm", "all"), Inbox(b, "news", "dm", "all")
    async with a, b:
        await a.join(room)
        await b.join(room)
        for i in range(5):
            await a.call("to_room", {"room": room, "event": "news", "data": i})
        await inbox_b.until(lambda: len(inbox_b.of("news")) == 5)
        await inbox_a.until(lambda: len(inbox_a.of("news")) == 5)
        assert inbox_b.of("news") == [0, 1, 2, 3, 4]
        await b.call("to_user", {"user": f"ba-{transport}", "event": "dm", "data": "hi"})
        await inbox_a.until(lambda: inbox_a.of("dm") == ["hi"])
        await a.call("to_all", {"event": "all", "data": transport})
        await inbox_b.until(lambda: transport in inbox_b.of("all"))
        # Offsets come from Redis: both nodes saw the same positions.
        assert a.positions[room] == b.positions[room]


async def test_calls_with_ack_reach_sessions_on_other_nodes(
    nodes: list[Server], transport: str
) -> None:
    a = Client(nodes[0].url, make_token(f"ca-{transport}"), transports=(transport,))
    b = Client(nodes[1].url, make_token(f"cb-{transport}"), transports=(transport,))
    never = asyncio.Event()

    @b.on("double")
    def double(data: Any) -> Any:
        return data * 2

    @b.on("stall")
    async def stall(data: Any) -> None:
        async with asyncio.timeout(5):
            await never.wait()

    async with a, b:
        ask = {"sid": b.sid, "event": "double", "data": 21}
        assert await a.call("call_sid", ask) == {"reply": 42}
        ask = {"sid": b.sid, "event": "stall", "timeout": 0.5}
        assert await a.call("call_sid", ask) == {"timeout": True}
        ask = {"sid": "no-such-session", "event": "double", "data": 1}
        assert "gone" in await a.call("call_sid", ask)
        # emit to one session on another node
        got = Inbox(b, "direct")
        await a.call("to_sid", {"sid": b.sid, "event": "direct", "data": "x"})
        await got.until(lambda: got.of("direct") == ["x"])


def test_a_malformed_user_since_is_refused_clearly(nodes: list[Server]) -> None:
    for bad in ("x", [1, 2], ["e", -1], ["e", "3"], ["e"]):
        response = httpx.post(
            nodes[0].url + "/anywire/negotiate",
            json={"v": 1, "user_since": bad},
            headers={"Authorization": f"Bearer {make_token('bad-since')}"},
        )
        assert response.status_code == 400, bad
        assert response.json()["code"] == 4502
        assert "user_since" in response.json()["message"]


def test_a_forged_session_token_is_not_forwarded(nodes: list[Server]) -> None:
    response = httpx.get(
        nodes[0].url + "/anywire/poll", headers={"X-Anywire-Token": "forged.token"}
    )
    assert response.status_code == 410
    assert response.json()[0]["c"] == 4007
