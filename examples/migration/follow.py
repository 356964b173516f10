"""After: the poller's replacement. It connects once, joins the room ``updates`` and is
told about every update as it is published: in order, and after a drop it catches up on
what it missed (resume) instead of asking ``since=`` again.

Run: ``python3 -m examples.migration.follow http://127.0.0.1:8000 TOKEN``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from anywire.clients.python import Client

ROOM = "updates"


async def follow(
    url: str,
    token: str | Callable[[], str],
    on_update: Callable[[dict[str, Any]], None],
    since: tuple[str, int] | None = None,
    **options: Any,
) -> Client:
    """Connect, join the room and call ``on_update`` for each update. ``since`` is a
    position saved from ``client.positions[ROOM]`` by an earlier run: the updates
    published after it are replayed first (a ``$lost`` event says what history no
    longer held)."""
    client = Client(url, token=token, **options)
    client.on("update")(on_update)
    await client.connect()
    await client.join(ROOM, since=since)
    return client


async def main(url: str, token: str) -> None:
    client = await follow(url, token, lambda u: print(u["id"], u["text"]))
    try:
        await asyncio.Event().wait()  # until Ctrl-C
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
