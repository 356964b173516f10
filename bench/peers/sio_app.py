"""python-socketio on the same uvicorn: what Python users would pick instead.

Clients enter room ``bench`` on connect; ``echo`` acks its data back. The publisher emits
to the room ``burst`` times per event-loop tick and pauses while sampled clients have more
than 400 packets queued (the same back-pressure as anywire's bench app).
Run: ``python bench/peers/sio_app.py --port P``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio

from anywire.bench.app import paced, run_control, serve_peer

sio = socketio.AsyncServer(
    async_mode="asgi", ping_interval=300, ping_timeout=60, cors_allowed_origins=[]
)
state = {"published": 0}
tasks: set[asyncio.Task[None]] = set()


@sio.event
async def connect(sid: str, environ: Any) -> None:
    await sio.enter_room(sid, "bench")


@sio.on("echo")
def echo(sid: str, data: Any) -> Any:
    return data


def _lagging(sample: list[Any]) -> bool:
    return any(s.queue.qsize() > 400 for s in sample if not s.closed)


async def publish(secs: float, size: int, burst: int) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + secs
    pad = "x" * max(1, size - 30)
    sockets = list(sio.eio.sockets.values())
    sample = sockets[:: max(1, len(sockets) // 16)]
    while loop.time() < end:
        for _ in range(burst):
            await sio.emit("m", {"ts": time.monotonic_ns() // 1000, "p": pad}, room="bench")
        state["published"] += burst
        await asyncio.sleep(0)
        while _lagging(sample) and loop.time() < end:
            await asyncio.sleep(0.001)


async def publish_paced(secs: float, size: int, rate: float) -> None:
    """Open loop: ``rate`` events/s on anywire's schedule (anywire.bench.app.paced)."""
    pad = "x" * max(1, size - 30)
    async for ts in paced(secs, rate):
        await sio.emit("m", {"ts": ts, "p": pad}, room="bench")
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


app = socketio.ASGIApp(
    sio,
    other_asgi_app=run_control(
        start, lambda: {"published": state["published"], "sessions": len(sio.eio.sockets)}
    ),
)

if __name__ == "__main__":
    serve_peer(app)
