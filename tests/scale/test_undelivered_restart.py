"""The offline delivery hook when a node with a fixed node id is SIGKILLed and started
again under the same id (issue #15): the restarted node removes its old connection
counts from Redis when it starts, so a user who was connected to it before the crash,
and is connected nowhere now, gets a push for an event published on another node.

Without the clearing, the other node sees the restarted node alive again (same
heartbeat key) with a positive count of that user and defers to it (decides someone
has the user); the restarted node ignores its own field and still calls the hook, so
the push itself survives in this two-node cluster. What the test checks is each
node's decision (node A's outcome metrics: it must decide "connected nowhere"), the
single push, and the old field gone from Redis.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import httpx
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


def _decided(node: Server) -> int:
    """Events ``node`` found connected nowhere: hooks called, or elections lost."""
    stats = httpx.get(node.url + "/anywire/metrics", timeout=5).json()
    return int(stats["undelivered_called"] + stats["undelivered_duplicate"])


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
        # Both nodes decide; either may win the election and call the hook.
        ops = [Client(n.url, token=make_token(f"ops-{secrets.token_hex(3)}")) for n in (node_a, b)]
        try:
            for client in ops:
                await client.connect()
            before = _decided(node_a)
            await to_user(ops[0], user, "after the crash")
            found = await wait_calls(ops, user, 1)
            # A decided "connected nowhere" (it called, or lost the election to B) instead
            # of deferring to B's stale count (no outcome at all): bounded wait.
            async with asyncio.timeout(WAIT):
                while _decided(node_a) != before + 1:
                    await asyncio.sleep(0.05)  # polling A's metrics, not synchronising
            assert [c["data"] for c in found] == ["after the crash"]
            sentinel = f"off-{secrets.token_hex(3)}"
            await to_user(ops[0], sentinel, "end")
            await wait_calls(ops, sentinel, 1)
            assert await all_calls(ops, user) == found  # once across both nodes
        finally:
            for client in ops:
                await client.close()
        assert redis.cli("HGET", live, NODE).strip() == ""  # its old field is gone
    finally:
        b.stop()
