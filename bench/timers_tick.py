"""CPU of one timer tick with N sessions of which a share is detached (a reconnect storm
in progress): the scan of every session at every tick (the host before #17 round 3,
reproduced here as the reference) against server/timers.py (detached sessions in a heap,
looked at only when due).

    python3 bench/timers_tick.py --sessions 10000 --detached 0.9

CPU time (time.process_time) over many ticks, A and B alternated; prints microseconds
per tick and the ratio. Nothing is due in the measured ticks (the common case: a tick
every 0.25 s, a resume window of 30 s), so this is the cost of looking.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anywire.core.auth import Identity
from anywire.core.frames import Connect
from anywire.core.session import SessionState
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.websocket import INFO as WEBSOCKET


def scan_every_session(host: object, now: float) -> None:
    """The tick before: next_deadline() of every session as it was then (a detached
    session's was its plain resume window); nothing is due here."""
    for sess in list(host.sessions.values()):  # type: ignore[attr-defined]
        if sess.state is SessionState.CLOSED:
            continue
        if sess.state is not SessionState.ATTACHED:
            deadline = (sess.detached_at or sess.created_at) + sess.settings.resume_window
        else:
            deadline = sess.next_deadline()  # unchanged for attached sessions
        if deadline is None or deadline > now:
            continue
        sess.poll(now)


async def main(n: int, detached: float, ticks: int) -> None:
    settings = Settings(max_sessions=n * 2, max_sessions_per_user=n * 2)
    aw = Anywire(anonymous=True, settings=settings)
    host = aw.host
    loop = asyncio.get_running_loop()
    links = []
    for _ in range(n):
        ticket = (await host.issuer.issue(Identity("u"), "/", "json", None, {})).ticket
        link = Link(WEBSOCKET, host.codec("json"))
        await host.attach(link, Connect(ticket))
        links.append(link)
    for link in links[: int(n * detached)]:
        host.detach(link)
    now = loop.time() + 1.0  # nothing due: heartbeats 20 s, windows 30 s away
    results: dict[str, list[float]] = {"scan (before)": [], "heap (timers.py)": []}
    for _ in range(5):  # alternate A and B
        t0 = time.process_time()
        for _ in range(ticks):
            scan_every_session(host, now)
        results["scan (before)"].append((time.process_time() - t0) / ticks)
        t0 = time.process_time()
        for _ in range(ticks):
            host.timers.tick(now)
        results["heap (timers.py)"].append((time.process_time() - t0) / ticks)
    best = {k: min(v) * 1e6 for k, v in results.items()}
    print(f"{n} sessions, {detached:.0%} detached, {ticks} ticks x 5, CPU per tick (best of 5):")
    for k, us in best.items():
        print(f"  {k:>18}: {us:9.1f} us")
    print(f"  ratio scan/heap: {best['scan (before)'] / best['heap (timers.py)']:.1f}x")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--detached", type=float, default=0.9)
    p.add_argument("--ticks", type=int, default=40)
    a = p.parse_args()
    asyncio.run(main(a.sessions, a.detached, a.ticks))
