"""``anywire demo``: a small chat on the in-memory broker, anonymous identities.

Events: ``chat`` ``{room, text}`` is broadcast to the room (except the sender) and
acknowledged with the message id; ``typing`` ``{room}`` tells the room someone types;
clients join rooms with ``join``. ``GET /`` is the chat page (the browser client, rooms,
presence, typing indicator, acks as ticks, the live transport and a switch to force one).
"""

from __future__ import annotations

import itertools
from importlib import resources
from typing import Any

from litestar import Litestar, MediaType, get

from .app import Anywire
from .litestar import AnywirePlugin
from .socket import Socket

__all__ = ["make_anywire", "make_app"]


def page(aw: Anywire) -> str:
    """The chat page, importing the browser client from its versioned URL."""
    html = resources.files("anywire.server").joinpath("static/demo.html").read_text("utf-8")
    return html.replace("{{CLIENT_URL}}", aw.client_url)


def make_anywire() -> Anywire:
    """The demo's Anywire object (anonymous, in-memory)."""
    aw = Anywire(anonymous=True)
    ids = itertools.count(1)

    @aw.on("chat")
    async def chat(sock: Socket, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise ValueError("chat needs {room, text}")
        room = str(data.get("room") or "lobby")
        if room not in sock.rooms:
            raise PermissionError(f"join {room!r} first")
        message = {"id": next(ids), "room": room, "from": sock.user, "text": data["text"][:2000]}
        await aw.emit("chat", message, room=room, skip=sock)
        return {"id": message["id"]}

    @aw.on("typing")
    async def typing(sock: Socket, data: Any) -> None:
        room = str((data or {}).get("room") or "lobby")
        if room in sock.rooms:
            await aw.emit("typing", {"room": room, "from": sock.user}, room=room, skip=sock)

    @aw.on("whoami")
    async def whoami(sock: Socket, data: Any) -> dict[str, Any]:
        return {"user": sock.user, "sid": sock.sid, "transport": sock.transport}

    return aw


def make_app() -> Litestar:
    """The demo Litestar app: the page at ``/`` and anywire under ``/anywire``."""
    aw = make_anywire()
    html = page(aw)

    @get("/", media_type=MediaType.HTML, sync_to_thread=False)
    def index() -> str:
        return html

    return Litestar([index], plugins=[AnywirePlugin(aw)])
