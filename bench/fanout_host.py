"""Fan-out through the session host, in-process: one broadcast delivered to N attached
WebSocket sessions, then each connection's writer takes its frames (``host.outgoing``)
and the client acknowledges them. Prints the best of R rounds in ns per session.

The path the metrics touch (per-transport frame counters in ``outgoing``, the sampled
delivery latency in ``deliver``). Run it from two checkouts to compare, e.g.::

    cd /path/to/checkout && python3 bench/fanout_host.py 10000 30
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the checkout it is run from

from anywire.core.auth import Identity
from anywire.core.frames import Connect
from anywire.server.app import Anywire
from anywire.server.broker import Envelope
from anywire.transports.base import Link
from anywire.transports.websocket import INFO


async def main(n: int = 10_000, rounds: int = 30) -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    host = aw.host
    codec = host.codec("json")
    links = []
    for i in range(n):
        issued = await host.issuer.issue(Identity(f"u{i}"), "/", "json", None, {})
        link = Link(INFO, codec)
        await host.attach(link, Connect(issued.ticket))
        host.outgoing(link)
        links.append(link)
    sessions = [host.sessions[link.sid] for link in links if link.sid is not None]
    best = float("inf")
    for r in range(rounds):
        env = Envelope("all", "/", None, "n", {"r": r, "text": "hello"})
        started = time.perf_counter()
        host.deliver(env)
        for link, sess in zip(links, sessions, strict=True):
            host.outgoing(link)
            sess.acknowledge(sess.out_seq)
        best = min(best, time.perf_counter() - started)
    print(f"{n} sessions, best of {rounds}: {best / n * 1e9:.0f} ns per session")
    await aw.stop(grace=0.1)


if __name__ == "__main__":
    asyncio.run(main(*(int(a) for a in sys.argv[1:])))
