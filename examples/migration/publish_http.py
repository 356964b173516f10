"""After, from a backend that does not run anywire (another service, a cron job, any
language): publish the same event with the server HTTP API and an API key."""

from __future__ import annotations

from typing import Any

import httpx


def publish_update(base: str, api_key: str, update: dict[str, Any]) -> list[Any]:
    """Publish ``update`` to the room ``updates``; returns its position
    ``[stream, epoch, offset]``. The idempotency key makes a retry safe."""
    r = httpx.post(
        f"{base}/anywire/publish",
        headers={"Authorization": f"Bearer {api_key}"},
        json={
            "event": "update",
            "room": "updates",
            "data": update,
            "idempotency_key": f"update-{update['id']}",
        },
    )
    r.raise_for_status()
    pos: list[Any] = r.json()["pos"]
    return pos
