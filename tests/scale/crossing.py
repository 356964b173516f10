"""What the tests of nodes behind a load balancer share: how many node requests crossed
between the nodes, and room and user events that must arrive exactly once across drops."""

from __future__ import annotations

import httpx

from anywire.clients.python import Client
from tests.e2e.conftest import Server

from .test_broadcast import Inbox


def forwarded(nodes: list[Server]) -> int:
    """Node requests (polls, POSTs, resuming negotiates) the nodes took over from another."""
    return sum(httpx.get(n.url + "/anywire/metrics").json()["forwarded_in"] for n in nodes)


async def events_across_drops(
    sender: Client, listener: Client, inbox: Inbox, room: str, user: str, total: int,
    timeout: float,
) -> None:  # fmt: skip
    """``sender`` sends ``total`` "tick" events to ``room`` and as many "dm" to ``user``
    (its to_room/to_user calls); the listener's connection is dropped after every 15th,
    once it has most of them. Asserts every one arrived exactly once, in order, and no
    ``$lost`` (``inbox`` records "tick", "dm" and "$lost")."""
    for i in range(total):
        await sender.call("to_room", {"room": room, "event": "tick", "data": i})
        await sender.call("to_user", {"user": user, "event": "dm", "data": i})
        if i % 15 == 7:
            await inbox.until(lambda i=i: len(inbox.of("tick")) >= i - 3)
            await listener.drop_connection()
    await inbox.until(
        lambda: len(inbox.of("tick")) >= total and len(inbox.of("dm")) >= total, timeout
    )
    assert inbox.of("tick") == list(range(total))
    assert inbox.of("dm") == list(range(total))
    assert inbox.of("$lost") == []
