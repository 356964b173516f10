"""Behind nginx round robin (no affinity), every transport keeps working: polls, upstream
POSTs and resuming negotiates that land on the other node are forwarded to the session's
owner through Redis. The sticky-cookie config works too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token

from .conftest import Nginx, start_nginx
from .test_broadcast import Inbox


@pytest.fixture(scope="module")
def round_robin(nodes: list[Server]) -> Iterator[Nginx]:
    ngx = start_nginx("round-robin.conf", [n.port for n in nodes])
    yield ngx
    ngx.stop()


@pytest.fixture(scope="module")
def sticky(nodes: list[Server]) -> Iterator[Nginx]:
    ngx = start_nginx("sticky-cookie.conf", [n.port for n in nodes])
    yield ngx
    ngx.stop()


def _forwarded(nodes: list[Server]) -> int:
    return sum(httpx.get(n.url + "/anywire/metrics").json()["forwarded_in"] for n in nodes)


async def _chat(url: str, transport: str, tag: str) -> None:
    room = f"rr-{tag}-{transport}"
    a = Client(url, make_token(f"rra-{tag}-{transport}"), transports=(transport,))
    b = Client(url, make_token(f"rrb-{tag}-{transport}"), transports=(transport,))
    inbox_a, inbox_b = Inbox(a, "msg"), Inbox(b, "msg")
    async with a, b:
        await a.join(room)
        await b.join(room)
        for i in range(20):
            sender = a if i % 2 == 0 else b
            assert await sender.call("echo", i) == i
            await sender.call("to_room", {"room": room, "event": "msg", "data": i})
        await inbox_a.until(lambda: len(inbox_a.of("msg")) == 20)
        await inbox_b.until(lambda: len(inbox_b.of("msg")) == 20)
        assert inbox_a.of("msg") == list(range(20)) == inbox_b.of("msg")
        assert a.recovered is False and b.recovered is False  # never had to start over
        assert a.sid is not None and b.sid is not None


async def test_every_transport_works_behind_round_robin(
    round_robin: Nginx, nodes: list[Server], transport: str
) -> None:
    before = _forwarded(nodes)
    await _chat(round_robin.url, transport, "rr")
    if transport != "websocket":
        # Polls and POSTs alternated between the nodes: the owner got them over Redis.
        assert _forwarded(nodes) > before


async def test_every_transport_works_behind_sticky_cookies(
    sticky: Nginx, transport: str
) -> None:
    await _chat(sticky.url, transport, "sticky")
