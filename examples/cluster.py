"""A chat that runs on several nodes (docs/scaling.md, README "Several nodes").

    anywire serve examples.cluster:aw --port 8001 --redis redis://127.0.0.1:6390/0

Every node needs the same ANYWIRE_SECRET. Anonymous: each client is a guest.
"""

from __future__ import annotations

import os
from typing import Any

from anywire.server import Anywire
from anywire.server.socket import Socket

aw = Anywire(anonymous=True)
NODE = os.environ.get("NODE_NAME", "")


@aw.on_connect
async def joined(sock: Socket) -> None:
    await sock.join("lobby")


@aw.on("say")
async def say(sock: Socket, data: Any) -> str:
    """Broadcast to the lobby on every node; the ack names the node that handled it."""
    await aw.emit("said", {"from": sock.user, "text": data}, room="lobby")
    return aw.node_id


@aw.on("who")
async def who(sock: Socket, data: Any) -> Any:
    """Everyone in the lobby, on every node."""
    return await aw.members("lobby")
