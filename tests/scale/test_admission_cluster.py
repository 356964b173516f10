"""Session caps with several nodes (Redis): every count is per node, and a ticket issued
by one node and redeemed on another is checked there, against that node's caps, when its
session starts (docs/protocol.md section 3.6)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, make_token
from tests.e2e.raw import RawConn

from .conftest import RedisServer, start_nodes


@pytest.fixture(scope="module")
def capped_nodes(redis: RedisServer) -> Iterator[list[Server]]:
    env = {"AW_MAX_SESSIONS_PER_USER": "1", "AW_BUSY_RETRY_AFTER": "1"}
    started = start_nodes(redis, env=env)
    yield started
    for node in started:
        node.stop()


async def opening_code(conn: RawConn, at: str) -> Any:
    """The close code an opening at ``at`` is refused with (None if it got a hello)."""
    try:
        first = await conn.open(at=at)
    except httpx.HTTPStatusError as exc:  # long-poll's opening GET: 410 and a close frame
        body = json.loads(exc.response.text)
        return body["code"] if isinstance(body, dict) else body[-1]["c"]
    if first.get("t") == "hello":
        return None
    if first.get("t") == "_http":
        return json.loads(first["body"])["code"]
    return first.get("c", first.get("code"))


async def test_a_ticket_of_another_node_is_checked_where_it_is_redeemed(
    capped_nodes: list[Server], transport: str
) -> None:
    a, b = capped_nodes
    token = make_token(f"cluster-capped-{transport}")
    holder = RawConn(a.url, transport, token)
    assert (await holder.open())["t"] == "hello"  # the user's one session, on node A
    # Node B has no session of this user: it issues a ticket. Node A refuses to open it.
    late = RawConn(b.url, transport, token)
    assert await opening_code(late, at=a.url) == 4000
    # Node B holds a slot for the ticket it issued until the ticket expires: the user is
    # at its cap there too meanwhile.
    other = RawConn(b.url, transport, token)
    refused = await other.negotiate(transports=[transport])
    assert (refused.status_code, refused.json()["code"]) == (503, 4000)
    for conn in (holder, late, other):
        await conn.close()
