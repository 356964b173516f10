"""anywire's own CPU per delivery of a room fan-out, in process: the WebSocket transport
and the host with an ASGI ``send()`` that does nothing (no uvicorn, no socket), so what is
measured is the push, the wake-up and the writer, not the write.

    python3 bench/inprocess_fanout.py               # events apart: every write at once
    python3 bench/inprocess_fanout.py --burst 10 --gap 1   # bursts of 10, one tick apart
    python3 bench/inprocess_fanout.py --burst 1 --gap 1    # one event every loop tick
    python3 bench/inprocess_fanout.py --burst 1 --gap 1 --direct  # ... written as the
        # real server does (the direct write, anywire.transports.direct), not send()
    python3 bench/inprocess_fanout.py --burst 1 --gap 1 --direct --stream  # ... and with
        # stream positions, as events published through a broker have

Prints the best of five rounds (process CPU time per delivery) and the number of
WebSocket messages sent (fewer than deliveries when frames were batched).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anywire.bench.app import BENCH_SETTINGS
from anywire.core.auth import Identity
from anywire.core.rooms import Member
from anywire.server.app import Anywire
from anywire.server.broker import Envelope
from anywire.transports.direct import DIRECT_KEY
from anywire.transports.websocket import WebSocketTransport

SCOPE = {"type": "websocket", "headers": [], "path": "/anywire/ws"}


class Peer:
    """One connection: connects with its ticket, then counts what it is sent."""

    def __init__(self, ticket: str) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        connect = json.dumps({"t": "connect", "ticket": ticket})
        self.inbox.put_nowait({"type": "websocket.receive", "text": connect})
        self.sent = 0

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent += 1

    def direct(self, data: bytes, binary: bool) -> bool:
        """The server protocol's direct write (what ``anywire serve`` offers): taken."""
        self.sent += 1
        return True


async def main(
    clients: int, events: int, burst: int, gap: int, direct: bool = False, stream: bool = False
) -> None:
    aw = Anywire(anonymous=True, settings=BENCH_SETTINGS)
    await aw.start()
    transport = WebSocketTransport(aw.host)
    peers, tasks = [], []
    for i in range(clients):
        issued = await aw.host.issuer.issue(Identity(f"u{i}"), "/", "json", None, {})
        peer = Peer(issued.ticket)
        peers.append(peer)
        scope = dict(SCOPE, extensions={DIRECT_KEY: peer.direct}) if direct else SCOPE
        tasks.append(asyncio.create_task(transport(scope, peer.receive, peer.send)))
        aw.host.rooms.join("/", "room", Member(issued.sid, None, None))
    for _ in range(20):
        await asyncio.sleep(0.01)  # every hello written
    before = sum(p.sent for p in peers)
    pad = "x" * 40
    best = float("inf")
    offset = 0
    for _ in range(5):
        start, delivered = time.process_time(), 0
        for e in range(events // burst):
            for _ in range(burst):
                env = Envelope("room", "/", "room", "m", {"ts": e, "p": pad})
                if stream:  # numbered in the room's stream, as the broker does
                    offset += 1
                    env.pos = ("room:/:room", "e1", offset)
                aw.host.deliver(env)
            for _ in range(gap):
                await asyncio.sleep(0)
            delivered += clients * burst
        best = min(best, (time.process_time() - start) / delivered * 1e6)
    for _ in range(4):
        await asyncio.sleep(0)
    messages = sum(p.sent for p in peers) - before
    print(
        f"{clients} clients, bursts of {burst}, {gap} loop iteration(s) apart: "
        f"{best:.2f} us CPU per delivery (best of 5), {messages:,} messages for "
        f"{5 * clients * (events // burst) * burst:,} deliveries"
    )
    for p in peers:
        p.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.gather(*tasks, return_exceptions=True)
    await aw.stop(grace=0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100, help="events per round")
    parser.add_argument("--burst", type=int, default=1, help="events delivered back to back")
    parser.add_argument("--gap", type=int, default=4, help="loop iterations between bursts")
    parser.add_argument("--direct", action="store_true", help="write as anywire serve does")
    parser.add_argument(
        "--stream", action="store_true", help="events numbered in the room's stream (a broker's)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.events, args.burst, args.gap, args.direct, args.stream))
