"""Behind nginx round robin (no affinity), every transport keeps working: polls, upstream
POSTs and resuming negotiates that land on the other node are forwarded to the session's
owner through Redis. The sticky-cookie config works too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token

from .conftest import Nginx, start_nginx
from .crossing import events_across_drops, forwarded
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
    before = forwarded(nodes)
    await _chat(round_robin.url, transport, "rr")
    if transport != "websocket":
        # Polls and POSTs alternated between the nodes: the owner got them over Redis.
        assert forwarded(nodes) > before


async def test_every_transport_works_behind_sticky_cookies(
    sticky: Nginx, transport: str
) -> None:
    await _chat(sticky.url, transport, "sticky")


async def test_reconnects_behind_round_robin_lose_and_repeat_nothing(
    round_robin: Nginx, nodes: list[Server], transport: str
) -> None:
    """Each drop's resume may land on either node (the resuming negotiate is forwarded to
    the owner; the transport request may reach the other node, which then starts a fresh
    session that catches up from stream history): the room's events arrive exactly once,
    in order, across 4 drops."""
    room = f"rr-drops-{transport}"
    user = f"rr-drops-{transport}"
    listener = Client(round_robin.url, make_token(user), transports=(transport,),
                      backoff_base=0.05, backoff_max=0.2)
    publisher = Client(nodes[0].url, make_token(f"rr-pub-{transport}"))
    inbox = Inbox(listener, "tick", "dm", "$lost")
    hellos: list[bool | None] = []
    listener.on_connect(lambda: hellos.append(listener.recovered))
    async with listener, publisher:
        await listener.join(room)
        await events_across_drops(publisher, listener, inbox, room, user, total=60, timeout=20)
        # 4 reconnects, each either a full resume (recovered) or a fresh session that
        # caught up from history; both paths occur across runs.
        assert len(hellos) == 5
