"""The battery profile across nodes (issue #15): a long poll of a session granted a
longer interval, landing on a node that does not own the session, is forwarded to its
owner and held there for the whole granted hold, not cut to 503 by the forwarding
node's wait (which must cover the longest hold any session may have, server/cluster.py).

The forwarding wait used to be ``poll_window + ping_timeout + 5 s`` (6.5 s here); the
session asks for 7 s, so that bound would have answered 503 before the owner did.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import make_token

from .conftest import RedisServer, start_nodes

HOLD = 7.0  # seconds: longer than poll_window + ping_timeout + 5 s
BATTERY = {"AW_PING_INTERVAL": "1", "AW_PING_TIMEOUT": "0.5", "AW_MAX_PING_INTERVAL": "8"}


def _metric(url: str, name: str) -> int:
    return int(httpx.get(url + "/anywire/metrics", timeout=5).json()[name])


@pytest.mark.asyncio
async def test_a_longer_hold_is_forwarded_and_held_on_the_owner(redis: RedisServer) -> None:
    a, b = start_nodes(redis, poll_window=1.0, env=BATTERY)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            auth = {"Authorization": f"Bearer {make_token('battery-across')}"}
            body = {"transports": ["longpoll"], "ping_interval": int(HOLD * 1000)}
            neg = (await http.post(b.url + "/anywire/negotiate", json=body, headers=auth)).json()
            assert neg["ping_interval"] == neg["poll_window"] == HOLD * 1000, neg
            opened = await http.get(b.url + "/anywire/poll", params={"ticket": neg["ticket"]})
            assert opened.status_code == 200, opened.text  # the hello; B owns the session
            before = _metric(b.url, "forwarded_in")
            start = time.monotonic()
            held = await http.get(
                a.url + "/anywire/poll", headers={"X-Anywire-Token": neg["token"]}
            )
            took = time.monotonic() - start
        print(f"\nforwarded poll held {took:.2f} s (granted {HOLD} s)")
        assert held.status_code == 204, (held.status_code, held.text, took)  # nothing yet
        assert HOLD - 0.5 <= took <= HOLD + 1.5, took
        assert _metric(b.url, "forwarded_in") == before + 1  # held on B, not answered by A
    finally:
        a.stop()
        b.stop()
