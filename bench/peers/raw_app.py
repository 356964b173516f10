"""The limit of this stack: a bare ASGI WebSocket broadcast loop on the same uvicorn.

No protocol, no sequencing, no batching: every message is one ``websocket.send`` per
client, in a plain loop. ``/ctl/start`` and ``/ctl/stats`` as in anywire's bench app.
Run: ``python bench/peers/raw_app.py --port P``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from anywire.bench.app import paced, run_control, serve_peer

clients: set[Any] = set()
state = {"published": 0}
tasks: set[asyncio.Task[None]] = set()


async def publish(secs: float, size: int, burst: int) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + secs
    pad = "x" * max(1, size - 30)
    while loop.time() < end:
        for _ in range(burst):
            text = json.dumps({"ts": time.monotonic_ns() // 1000, "p": pad}, separators=(",", ":"))
            message = {"type": "websocket.send", "text": text}
            for send in list(clients):
                try:
                    await send(message)
                except Exception:
                    clients.discard(send)
            state["published"] += 1
        await asyncio.sleep(0)


async def publish_paced(secs: float, size: int, rate: float) -> None:
    """Open loop: ``rate`` events/s on anywire's schedule (anywire.bench.app.paced)."""
    pad = "x" * max(1, size - 30)
    async for ts in paced(secs, rate):
        text = json.dumps({"ts": ts, "p": pad}, separators=(",", ":"))
        message = {"type": "websocket.send", "text": text}
        for send in list(clients):
            try:
                await send(message)
            except Exception:
                clients.discard(send)
        state["published"] += 1


def start(query: dict[str, str]) -> None:
    secs, size = float(query.get("secs", 10)), int(query.get("size", 100))
    rate = float(query.get("rate", 0))
    task = asyncio.create_task(
        publish_paced(secs, size, rate)
        if rate > 0
        else publish(secs, size, int(query.get("burst", 1)))
    )
    tasks.add(task)
    task.add_done_callback(tasks.discard)


control = run_control(start, lambda: {"published": state["published"], "sessions": len(clients)})


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        await control(scope, receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    clients.add(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:  # echo
                await send({"type": "websocket.send", "text": message["text"]})
    finally:
        clients.discard(send)


if __name__ == "__main__":
    serve_peer(app)
