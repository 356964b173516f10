"""``anywire demo``: a small chat on the in-memory broker, anonymous identities.

Events: ``chat`` ``{room, text}`` is broadcast to the room (except the sender) and
acknowledged with the message id; ``typing`` ``{room}`` tells the room someone types;
clients join rooms with ``join``. ``GET /`` explains how to join with the Python client.
"""

from __future__ import annotations

import itertools
from typing import Any

from litestar import Litestar, MediaType, get

from .app import Anywire
from .litestar import AnywirePlugin
from .socket import Socket

__all__ = ["make_anywire", "make_app"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>anywire demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}
code,pre{background:#f4f4f5;border-radius:4px;padding:.1rem .3rem}pre{padding:1rem;overflow:auto}
</style></head><body>
<h1>anywire demo</h1>
<p>This server runs a chat on the embedded in-memory broker. Anyone may connect (demo
identities). It offers WebSocket, Server-Sent Events and long-polling: see
<code>POST /anywire/negotiate</code>.</p>
<p>The browser chat arrives with the JavaScript client. Until then, join from Python:</p>
<pre>import asyncio
from anywire.clients.python import Client

async def main():
    client = Client("http://HOST")
    client.on("chat")(lambda msg: print(msg["from"], ":", msg["text"]))
    await client.connect()
    await client.join("lobby")
    print(await client.call("chat", {"room": "lobby", "text": "hello"}))
    await asyncio.sleep(30)
    await client.close()

asyncio.run(main())</pre>
<p>Force a transport with <code>Client(..., transports=("longpoll",))</code>.</p>
</body></html>"""


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

    @get("/", media_type=MediaType.HTML, sync_to_thread=False)
    def index() -> str:
        return PAGE

    return Litestar([index], plugins=[AnywirePlugin(aw)])
