"""The server of the bandwidth benchmark (:mod:`.bandwidth`): the bench app
(:mod:`.app`, every session in room ``bench``) with permessage-deflate on or off and one
more control endpoint:

* ``POST /ctl/chat?kind=chat|small&n=N&rate=R``: publish the ``n`` events of
  :func:`~.payloads.payloads` to the room, one at a time on a fixed schedule of ``rate``
  per second (as a chat's lines arrive: nothing to coalesce, each event its own frame);
  answers ``{"start": T}``: event ``i`` is due at ``T + i / rate`` (``time.monotonic()``).

Run as ``python -m anywire.bench.chatapp --port P [--ws-deflate]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from typing import Any
from urllib.parse import parse_qs

from ..server.app import Anywire
from .app import ROOM, make_app
from .payloads import payloads

__all__ = ["make_chat_app"]


async def _publish(aw: Anywire, events: list[dict[str, Any]], rate: float, start: float) -> None:
    loop = asyncio.get_running_loop()
    for i, event in enumerate(events):
        # On schedule, whatever the server does (a late event is sent at once).
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        await aw.emit("m", event, room=ROOM)


def make_chat_app(deflate: bool) -> Anywire:
    """The bench app, with ``Settings.ws_deflate`` set to ``deflate``."""
    aw = make_app()
    aw.settings = dataclasses.replace(aw.settings, ws_deflate=deflate)
    aw.host.settings = aw.settings
    other = aw.fallback
    assert other is not None  # the bench app's /ctl/start and /ctl/stats
    tasks: set[asyncio.Task[None]] = set()

    async def control(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/ctl/chat":
            await other(scope, receive, send)
            return
        q = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        events = payloads(q.get("kind", "chat"), int(q.get("n", 100)))
        # The schedule starts a moment from now and is answered: event i is due at
        # start + i / rate on this machine's monotonic clock (asyncio's loop.time()),
        # so the clients measure each delivery's latency without a timestamp in it.
        start = asyncio.get_running_loop().time() + 0.05
        task = asyncio.create_task(_publish(aw, events, float(q.get("rate", 50)), start))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps({"start": start}).encode()})

    aw.fallback = control
    return aw


def main() -> None:
    """Serve the bandwidth benchmark's app under ``anywire serve``'s settings."""
    from ..server.cli import run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws-deflate", action="store_true")
    args = parser.parse_args()
    run(make_chat_app(args.ws_deflate), "127.0.0.1", args.port, "warning")


if __name__ == "__main__":
    main()
