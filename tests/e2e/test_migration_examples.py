"""docs/migration.md's examples run (issue #15): examples/migration/after.py under
``anywire serve``; the poller's replacement (follow.py) receives what the app's own
``POST /updates`` (``aw.emit``) and another backend (publish_http.py, the HTTP publish
API) publish, in order, catches up after a drop (resume) and from a saved position;
the old ``GET /updates?since=`` keeps answering side by side. On every transport."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from examples.migration.before import fetch_new
from examples.migration.follow import ROOM, follow
from examples.migration.publish_http import publish_update

from .conftest import Server, start_server

SECRET = secrets.token_hex(32)
KEY = "migration-key-" + secrets.token_hex(8)
WAIT = 5.0


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    srv = start_server(
        {"UPDATES_JWT_SECRET": SECRET, "ANYWIRE_API_KEY": KEY},
        app="examples.migration.after:app",
    )
    yield srv
    srv.stop()


def token(user: str) -> str:
    now = int(time.time())
    claims = {"sub": user, "aud": "updates", "iat": now, "exp": now + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


class Updates:
    """What one follower received, with a wait for the n-th."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    def __call__(self, update: dict[str, Any]) -> None:
        self.items.append(update)
        self.changed.set()

    async def wait(self, n: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(WAIT):
            while len(self.items) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.items


async def add(app: Server, text: str) -> dict[str, Any]:
    """The app's own write path (stores, then ``aw.emit``)."""
    async with httpx.AsyncClient() as http:
        r = await http.post(app.url + "/updates", json={"text": text})
    assert r.status_code == 201, r.text
    update: dict[str, Any] = r.json()
    return update


async def test_follower_gets_every_update_and_catches_up(app: Server, transport: str) -> None:
    tag = secrets.token_hex(3)
    got = Updates()
    client = await follow(app.url, token(f"u-{tag}"), got, transports=(transport,))
    try:
        assert client.transport == transport
        first = await add(app, f"{tag} one")
        # Another backend publishes through the HTTP API into the same room and stream.
        other = {"id": f"ext-{tag}", "text": f"{tag} from elsewhere"}
        pos = await asyncio.to_thread(publish_update, app.url, KEY, other)
        assert pos[0] == f"room:/:{ROOM}"
        # The same idempotency key again: not delivered twice.
        assert await asyncio.to_thread(publish_update, app.url, KEY, other) == pos
        await got.wait(2)
        assert got.items[:2] == [first, other]

        # A drop (as a network failure would): updates published meanwhile arrive on
        # resume, in order, once.
        await client.drop_connection()
        missed = [await add(app, f"{tag} while away {i}") for i in range(3)]
        await got.wait(5)
        assert got.items == [first, other, *missed]
        assert client.stats["duplicates"] == 0
        saved = client.positions[ROOM]
    finally:
        await client.close()

    # A later run that saved its position gets what was published since, then live ones
    # (what ``since=`` did for the poller).
    later = [await add(app, f"{tag} later {i}") for i in range(2)]
    again = Updates()
    client = await follow(app.url, token(f"u-{tag}"), again, since=saved, transports=(transport,))
    try:
        await again.wait(2)
        live = await add(app, f"{tag} live")
        await again.wait(3)
        assert again.items == [*later, live]
    finally:
        await client.close()

    # Side by side: the old poller still works against the migrated app, same writes.
    polled = await asyncio.to_thread(fetch_new, app.url, first["id"] - 1)
    assert [u for u in polled if u["text"].startswith(tag)] == [first, *missed, *later, live]
