"""The chat server of docs/guide.md (examples/chat.py), run as the guide runs it: only
members of a join-protected room can broadcast into it, on every transport, and nobody
can speak in another user's name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from anywire.clients.python import AckError, Client

from .conftest import Server, start_server

SECRET = "change-me: 32+ random bytes, shared with your token issuer"
WAIT = 10.0


def token(sub: str, **claims: Any) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + 600, "aud": "my-app", **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def chat() -> Iterator[Server]:
    srv = start_server({}, app="examples.chat:aw")
    yield srv
    srv.stop()


async def test_only_members_broadcast_into_a_protected_room(chat: Server, transport: str) -> None:
    admin = Client(chat.url, token=token("ada", admin=True), transports=(transport,))
    intruder = Client(chat.url, token=token("mallory"), transports=(transport,))
    heard: list[Any] = []
    arrived = asyncio.Event()

    @admin.on("chat")
    def on_chat(message: Any) -> None:
        heard.append(message)
        arrived.set()

    try:
        await admin.connect()
        await intruder.connect()
        await admin.join("admin-ops")
        await admin.join("lobby")
        with pytest.raises(AckError) as refused:
            await intruder.join("admin-ops")
        assert refused.value.code == "forbidden"
        # Not a member: the broadcast is refused, nothing reaches the room.
        with pytest.raises(AckError) as denied:
            await intruder.call("chat", {"room": "admin-ops", "text": "pwned"}, timeout=WAIT)
        assert denied.value.code == "handler_error" and "join" in denied.value.message
        # A room it may join works, and it cannot sign as someone else.
        await intruder.join("lobby")
        answer = await intruder.call(
            "chat", {"room": "lobby", "text": "hello", "from": "ada"}, timeout=WAIT
        )
        assert answer == {"stored": True}
        async with asyncio.timeout(WAIT):
            await arrived.wait()
        # The refused broadcast would have come first (one node, published in order).
        assert heard == [{"room": "lobby", "from": "mallory", "text": "hello"}]
    finally:
        await intruder.close()
        await admin.close()
