"""The offline delivery hook when a node with a fixed node id is SIGKILLed and started
again under the same id (issue #15): the restarted node removes its old connection
counts from Redis when it starts, so a user who was connected to it before the crash,
and is connected nowhere now, gets a push for an event published on another node.

Without the clearing, the other node sees the restarted node alive again (same
heartbeat key) with a positive count of that user, and decides someone has it: no push.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import Server, make_token, start_server
from tests.e2e.raw import RawConn

from .conftest import SECRET, RedisServer
from .test_undelivered_nodes import WAIT, all_calls, to_user, wait_calls

NODE = "fixed-b"
APP = "tests.e2e.undeliveredapp:app"


def _node(redis: RedisServer, node_id: str | None = None) -> Server:
    env = {"ANYWIRE_SECRET": SECRET, "AW_RESUME_WINDOW": "10"}
    if node_id is not None:
        env["AW_NODE_ID"] = node_id
    return start_server(env, args=("--redis", redis.url), app=APP)


@pytest.fixture
def node_a(redis: RedisServer) -> Iterator[Server]:
    srv = _node(redis)
    yield srv
    srv.stop()


async def test_a_node_restarted_with_its_id_forgets_its_old_counts(
    redis: RedisServer, node_a: Server
) -> None:
    user = f"crash-{secrets.token_hex(3)}"
    live = f"aw:live:{{/}}:{user}"
    b = _node(redis, NODE)
    try:
        conn = RawConn(b.url, "websocket", make_token(user))
        await conn.open()
        async with asyncio.timeout(WAIT):
            while redis.cli("HGET", live, NODE).strip() != "1":
                await asyncio.sleep(0.02)  # B's count reaching Redis, bounded
        b.stop(sig_term=False)  # SIGKILL: no decrement
        await conn.close()
        assert redis.cli("HGET", live, NODE).strip() == "1"  # the stale count
        b = _node(redis, NODE)  # serving: its start has cleared its old fields
        assert redis.cli("EXISTS", f"aw:alive:{NODE}").strip() == "1"  # alive again
        async with Client(node_a.url, token=make_token(f"ops-{secrets.token_hex(3)}")) as ops:
            await to_user(ops, user, "after the crash")
            found = await wait_calls([ops], user, 1)
            assert [c["data"] for c in found] == ["after the crash"]
            assert await all_calls([ops], user) == found  # once
        assert redis.cli("HGET", live, NODE).strip() == ""  # its old field is gone
    finally:
        b.stop()
