"""The offline delivery hook on one node, every transport (issue #15): an event for a
user with no attached connection calls ``on_undelivered`` once, with its fields; a
connected user's does not; a detached session (in its resume window) counts as offline
and its client still catches the event up on resume; a failing hook breaks nothing."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from anywire.clients.python import Client
from anywire.core.streams import user_stream

from .conftest import Server, make_token, start_server
from .raw import RawConn

WAIT = 5.0


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server(
        {"AW_RESUME_WINDOW": "10"},
        app="tests.e2e.undeliveredapp:app",
        args=("--metrics", "prometheus", "--conn-log-level", "info"),  # hook outcomes
    )
    yield srv
    srv.stop()


@pytest_asyncio.fixture
async def sender(server: Server) -> AsyncIterator[Client]:
    """A client that emits to users and reads the hook's records."""
    client = Client(server.url, token=make_token(f"sender-{secrets.token_hex(3)}"))
    await client.connect()
    yield client
    await client.close()


async def hook_calls(client: Client, user: str, n: int) -> list[dict[str, Any]]:
    """The hook's records for ``user`` once there are ``n`` (bounded wait)."""
    async with asyncio.timeout(WAIT):
        while True:
            mine = [c for c in await client.call("undelivered") if c["user"] == user]
            if len(mine) >= n:
                return mine
            await asyncio.sleep(0.02)  # polling the server's record, not synchronising


async def to_user(client: Client, user: str, data: Any, event: str = "note") -> None:
    await client.call("to_user", {"user": user, "event": event, "data": data})


async def test_offline_user_calls_the_hook_once_per_event(sender: Client) -> None:
    user = f"off-{secrets.token_hex(3)}"
    await to_user(sender, user, {"n": 1})
    await to_user(sender, user, "boom")  # the hook raises: logged, nothing else
    await to_user(sender, user, {"n": 2})
    await to_user(sender, user, "$x", event="$internal")  # the library's own: never
    calls = await hook_calls(sender, user, 2)
    assert [c["data"] for c in calls] == [{"n": 1}, {"n": 2}]
    assert {c["event"] for c in calls} == {"note"} and {c["ns"] for c in calls} == {"/"}
    assert {c["stream"] for c in calls} == {user_stream("/", user)}
    # Its position in the user's stream (the failed one took the offset in between).
    assert calls[1]["offset"] == calls[0]["offset"] + 2
    # Once per event: a later sentinel comes through, the earlier ones did not repeat.
    await to_user(sender, user, "end")
    assert [c["data"] for c in await hook_calls(sender, user, 3)] == [{"n": 1}, {"n": 2}, "end"]


async def test_connected_user_does_not_call_the_hook(
    server: Server, sender: Client, transport: str
) -> None:
    user = f"on-{secrets.token_hex(3)}"
    conn = RawConn(server.url, transport, make_token(user))
    await conn.open()
    try:
        await to_user(sender, user, "hello")
        frame = await conn.recv(WAIT)
        assert frame["t"] == "event" and frame["d"] == "hello"
        # A sentinel to an offline user, delivered after: its call proves the first
        # event's delivery (and its check) is past.
        other = f"off-{secrets.token_hex(3)}"
        await to_user(sender, other, "sentinel")
        await hook_calls(sender, other, 1)
        assert await hook_calls(sender, user, 0) == []
    finally:
        await conn.close()


async def test_detached_session_calls_the_hook_and_catches_up(
    server: Server, sender: Client, transport: str
) -> None:
    user = f"bg-{secrets.token_hex(3)}"
    conn = RawConn(server.url, transport, make_token(user))
    await conn.open()
    token, last = conn.neg["token"], conn.last_seq
    await conn.close()  # the app went to the background: no goodbye, the session waits
    async with asyncio.timeout(WAIT):
        while await sender.call("live", user):
            await asyncio.sleep(0.02)  # until the server has seen the connection go
    await to_user(sender, user, "while away")
    [call] = await hook_calls(sender, user, 1)
    assert call["data"] == "while away" and call["event"] == "note"
    back = RawConn(server.url, transport, make_token(user))
    try:
        hello = await back.open(resume_last=last, resume=token)
        assert hello["recovered"] is True
        frame = await back.recv(WAIT)
        assert frame["t"] == "event" and frame["d"] == "while away"
    finally:
        await back.close()


def _hook_metrics(server: Server) -> tuple[dict[str, int], str]:
    stats = httpx.get(server.url + "/anywire/metrics?format=json", timeout=5).json()
    text = httpx.get(server.url + "/anywire/metrics", timeout=5).text
    return {k: v for k, v in stats.items() if k.startswith("undelivered_")}, text


def _prom(text: str, outcome: str) -> float:
    line = rf'^anywire_undelivered_hooks_total{{outcome="{outcome}"}} (\S+)$'
    found = re.search(line, text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_hook_outcomes_are_counted_and_logged(server: Server, sender: Client) -> None:
    """Each hook outcome is an Observer event: a JSON and a Prometheus counter, and an
    ``undelivered`` line in the connection log with the user and the event."""
    user = f"told-{secrets.token_hex(3)}"
    before, before_text = _hook_metrics(server)
    await to_user(sender, user, {"n": 1})
    await to_user(sender, user, "boom")  # the hook raises
    lines: list[str] = []
    async with asyncio.timeout(WAIT):
        while len(lines) < 2:
            text = server.log.read_text(errors="replace")
            lines = [ln for ln in text.splitlines() if "undelivered outcome=" in ln and user in ln]
            await asyncio.sleep(0.02)  # polling the server's log, not synchronising
    said = sorted(re.findall(r"outcome=(\w+)", "\n".join(lines)))
    assert said == ["called", "failed"], lines
    for ln in lines:
        assert f"user={user}" in ln and "event_name=note" in ln and "namespace=/" in ln, ln
    after, after_text = _hook_metrics(server)
    assert after["undelivered_called"] == before["undelivered_called"] + 1, (before, after)
    assert after["undelivered_failed"] == before["undelivered_failed"] + 1, (before, after)
    assert after["undelivered_duplicate"] == 0  # one node: no election
    for outcome in ("called", "failed"):
        assert _prom(after_text, outcome) == _prom(before_text, outcome) + 1, after_text
