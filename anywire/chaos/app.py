"""The application every node of a chaos run serves: ``anywire serve anywire.chaos.app:aw``.

JWT authentication with the run's secret; timings from the environment (``AW_CHAOS_*``,
set by :mod:`anywire.chaos.run`), short enough that faults are noticed within seconds.
``echo`` answers client calls; ``AW_CHAOS_JOIN_DELAY`` makes every client join wait that
many seconds in the join hook (an overloaded node). SIGUSR1 writes the stack of the
main thread and of every asyncio task to the node's log (a node that does not stop is
killed after that, so its log says where it hung).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from types import FrameType
from typing import Any

from ..core.settings import Settings
from ..server.app import Anywire
from ..server.auth import JWTAuth
from ..server.socket import Socket

__all__ = ["AUDIENCE", "SECRET", "aw", "settings_from_env"]

SECRET = "anywire-chaos-secret-0123456789abcdef"
AUDIENCE = "anywire-chaos"


def settings_from_env() -> Settings:
    """The run's settings (defaults: fast fault detection, generous history)."""

    def f(name: str, default: float) -> float:
        return float(os.environ.get(f"AW_CHAOS_{name}", default))

    return Settings(
        ping_interval=f("PING_INTERVAL", 2.0),
        ping_timeout=f("PING_TIMEOUT", 3.0),
        poll_window=f("POLL_WINDOW", 4.0),
        resume_window=f("RESUME_WINDOW", 20.0),
        ack_timeout=f("ACK_TIMEOUT", 3.0),
        stream_history=int(f("HISTORY", 5000)),
        outbox_size=int(f("OUTBOX", 5000)),
        outbox_bytes=int(f("OUTBOX_BYTES", 64 * 1024 * 1024)),
        node_heartbeat=f("NODE_HEARTBEAT", 0.5),
        flood_rate=f("FLOOD_RATE", 2000),
        flood_burst=int(f("FLOOD_BURST", 5000)),
        # Every client of the fleet comes from 127.0.0.1 and they all reconnect at once.
        negotiate_rate=f("NEGOTIATE_RATE", 1e6),
        negotiate_burst=int(f("NEGOTIATE_BURST", 1_000_000)),
    )


def dump_stacks(signum: int, frame: FrameType | None) -> None:
    """Write where the process is: the main thread, then every asyncio task."""
    out = sys.stderr
    print(f"=== stacks (signal {signum})", file=out)
    traceback.print_stack(frame, file=out)
    loop = asyncio._get_running_loop()
    for task in asyncio.all_tasks(loop) if loop is not None else ():
        print(f"--- {task!r}", file=out)
        # Task.print_stack shows only the task's own coroutine: follow what it awaits.
        coro: Any = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                print(f"    {frame.f_code.co_filename}:{frame.f_lineno} "
                      f"{frame.f_code.co_name}", file=out)  # fmt: skip
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    out.flush()


signal.signal(signal.SIGUSR1, dump_stacks)

aw = Anywire(
    auth=JWTAuth(SECRET, audience=AUDIENCE),
    settings=settings_from_env(),
    secret=SECRET.encode(),
)


@aw.on("echo")
def echo(sock: Socket, data: Any) -> Any:
    return data


@aw.on_join
async def may_join(sock: Socket, room: str, meta: Any) -> bool:
    delay = float(os.environ.get("AW_CHAOS_JOIN_DELAY", "0"))
    if delay > 0:
        await asyncio.sleep(delay)
    return True
