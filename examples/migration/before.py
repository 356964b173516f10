"""Before: a Litestar app whose clients poll ``GET /updates?since=N`` every few seconds.

Run: ``uvicorn examples.migration.before:app --port 8000``; add an update with
``curl -d '{"text": "hi"}' http://127.0.0.1:8000/updates``; follow with
``python3 -m examples.migration.before http://127.0.0.1:8000``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx
from litestar import Litestar, get, post
from litestar.params import FromQuery, JSONBody

# Your database table; an in-memory list here. ``id`` only grows.
UPDATES: list[dict[str, Any]] = []


@get("/updates")
async def list_updates(since: FromQuery[int] = 0) -> list[dict[str, Any]]:
    """Every update after ``since`` (the last id the poller saw)."""
    return [u for u in UPDATES if u["id"] > since]


@post("/updates")
async def add_update(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    update = {"id": len(UPDATES) + 1, "text": str(data.get("text", ""))}
    UPDATES.append(update)
    return update


app = Litestar([list_updates, add_update])


def fetch_new(base: str, since: int) -> list[dict[str, Any]]:
    """One poll: the updates after ``since``."""
    r = httpx.get(f"{base}/updates", params={"since": since})
    r.raise_for_status()
    updates: list[dict[str, Any]] = r.json()
    return updates


def poll(base: str, since: int = 0, every: float = 2.0) -> None:
    """The poller: one request every ``every`` seconds, forever."""
    while True:
        for update in fetch_new(base, since):
            print(update["id"], update["text"])
            since = update["id"]
        time.sleep(every)


if __name__ == "__main__":
    poll(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
