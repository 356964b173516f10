"""The push example of docs/guide.md, run as written against a real server (issue
#15): a ``chat`` event to a user with no device connected asks the push service for one
notification with the message's text; another event name, or a connected user, asks
for none. The example is read from the guide (tests/e2e/pushapp.py), so the test
follows the guide."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from anywire.clients.python import Client

from .conftest import Server, make_token, start_server
from .pushapp import guide_example
from .raw import RawConn

WAIT = 5.0


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({}, app="tests.e2e.pushapp:app")
    yield srv
    srv.stop()


@pytest_asyncio.fixture
async def sender(server: Server) -> AsyncIterator[Client]:
    client = Client(server.url, token=make_token(f"sender-{secrets.token_hex(3)}"))
    await client.connect()
    yield client
    await client.close()


async def to_user(client: Client, user: str, event: str, data: Any) -> None:
    await client.call("to_user", {"user": user, "event": event, "data": data})


async def pushes_for(client: Client, user: str, n: int) -> list[dict[str, Any]]:
    """The pushes sent to ``user`` once there are ``n`` (bounded wait)."""
    async with asyncio.timeout(WAIT):
        while len(mine := [p for p in await client.call("pushes") if p["user"] == user]) < n:
            await asyncio.sleep(0.02)  # polling the server's record, not synchronising
    return mine


def test_the_guide_has_the_example() -> None:
    assert "push_service.send" in guide_example()


async def test_a_chat_message_to_an_offline_user_is_pushed_once(sender: Client) -> None:
    user = f"asleep-{secrets.token_hex(3)}"
    await to_user(sender, user, "typing", {"text": "not a chat event"})  # no push
    await to_user(sender, user, "chat", {"text": "dinner at 8?"})
    await to_user(sender, user, "chat", {"text": "bring wine"})
    pushed = await pushes_for(sender, user, 2)
    assert pushed == [
        {"user": user, "title": "New message", "body": "dinner at 8?"},
        {"user": user, "title": "New message", "body": "bring wine"},
    ]


async def test_a_connected_user_gets_the_message_and_no_push(
    server: Server, sender: Client, transport: str
) -> None:
    user = f"awake-{secrets.token_hex(3)}"
    conn = RawConn(server.url, transport, make_token(user))
    await conn.open()
    try:
        await to_user(sender, user, "chat", {"text": "are you there?"})
        frame = await conn.recv(WAIT)
        assert frame["t"] == "event" and frame["d"] == {"text": "are you there?"}
        # A sentinel to an offline user, sent after: once it is pushed, the first
        # event has been decided too (one node's deliveries are in order).
        other = f"asleep-{secrets.token_hex(3)}"
        await to_user(sender, other, "chat", {"text": "sentinel"})
        await pushes_for(sender, other, 1)
        assert await pushes_for(sender, user, 0) == []
    finally:
        await conn.close()
