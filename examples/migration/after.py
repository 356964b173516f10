"""After: the same Litestar app with anywire mounted. ``POST /updates`` still stores the
update and now also publishes it to the room ``updates`` (``aw.emit``); ``GET /updates``
stays, so old pollers keep working while clients move over.

Run: ``UPDATES_JWT_SECRET=... ANYWIRE_API_KEY=... anywire serve examples.migration.after:app``.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, get, post
from litestar.params import FromQuery, JSONBody

from anywire.server import Anywire, AnywirePlugin, JWTAuth

SECRET = os.environ.get(
    "UPDATES_JWT_SECRET", "change-me: 32+ random bytes, shared with your token issuer"
)
ROOM = "updates"

# Keep your auth: the same JWTs your login service issues (``sub`` and ``exp`` required).
# ``api_key`` turns on ``POST /anywire/publish`` for backends that do not run anywire.
aw = Anywire(auth=JWTAuth(SECRET, audience="updates"), api_key=os.environ.get("ANYWIRE_API_KEY"))

UPDATES: list[dict[str, Any]] = []


@aw.on_join
def may_join(sock: Any, room: str, meta: Any) -> bool:
    # Whatever decided who may read /updates decides who may join the room.
    return room == ROOM


@get("/updates")
async def list_updates(since: FromQuery[int] = 0) -> list[dict[str, Any]]:
    """Unchanged: old pollers keep working during the migration (and for a rollback)."""
    return [u for u in UPDATES if u["id"] > since]


@post("/updates")
async def add_update(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    update = {"id": len(UPDATES) + 1, "text": str(data.get("text", ""))}
    UPDATES.append(update)
    # The one new line: push it to everyone in the room; ``id=`` makes a retry safe.
    await aw.emit("update", update, room=ROOM, id=f"update-{update['id']}")
    return update


app = Litestar([list_updates, add_update], plugins=[AnywirePlugin(aw)])
