"""The chat of docs/guide.md ("Server"), runnable: rooms some users may not enter, and a
broadcast only members of a room can make.

    CHAT_JWT_SECRET=... anywire serve examples.chat:aw --port 8000 --allowed-host chat.example.com

The safe room-broadcast pattern: the join hook decides who may be in a room, and the
``chat`` handler broadcasts only into a room the sender *is in* (``sock.rooms``), so a
handler never becomes a way around the join hook. The message is built from checked
fields (never ``**data``), so nobody can speak in another user's name.
"""

from __future__ import annotations

import os
from typing import Any

from anywire.server import Anywire, JWTAuth, Reject, Settings
from anywire.server.socket import Socket

SECRET = os.environ.get(
    "CHAT_JWT_SECRET", "change-me: 32+ random bytes, shared with your token issuer"
)

aw = Anywire(
    auth=JWTAuth(SECRET, algorithms=["HS256"], audience="my-app"),
    settings=Settings(allowed_origins=("https://app.example.com",)),
)


@aw.on_connect
async def connected(sock: Socket) -> None:
    if sock.claims.get("suspended"):
        raise Reject("account suspended")  # the client gets close code 4505
    await sock.join(f"user-feed:{sock.user}")


@aw.on_join  # authorizes *client* join requests
async def may_join(sock: Socket, room: str, meta: Any) -> bool:
    return not room.startswith("admin-") or bool(sock.claims.get("admin", False))


@aw.on("chat")
async def chat(sock: Socket, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ValueError("chat needs {room, text}")  # the client gets an error ack
    room = data.get("room")
    if room not in sock.rooms:  # members only: the join hook decided who that is
        raise PermissionError(f"join {room!r} first")
    message = {"room": room, "from": sock.user, "text": data["text"][:2000]}
    await aw.emit("chat", message, room=room, skip=sock)
    return {"stored": True}  # the client's ack
