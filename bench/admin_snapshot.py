"""Cost of one admin snapshot (server/admin.py) with N sessions, a third on each
transport, in N/2 rooms of two: the time the event loop spends on it every interval
(2 s by default) and its size. Figures in NOTES-admin.md / docs/admin.md.

    PYTHONPATH=. python3 bench/admin_snapshot.py 100000
"""

from __future__ import annotations

import json
import sys
import time

from anywire.core.rooms import Member
from anywire.core.session import Heartbeat, ServerSession
from anywire.server.app import Anywire
from anywire.server.codecs import make_codecs
from anywire.transports.base import Link
from anywire.transports.longpoll import INFO as LP
from anywire.transports.sse import INFO as SSE
from anywire.transports.websocket import INFO as WS

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
aw = Anywire(anonymous=True, admin_token="x" * 32)
codec = make_codecs()["json"]
beat = Heartbeat(ping_interval=20.0, dead_after=30.0)
for i in range(n):
    s = ServerSession(f"s{i}", "u", "/", aw.settings, 0.0, None)
    s.attach(Link((WS, SSE, LP)[i % 3], codec), 0.0, beat, None)
    aw.host.sessions[s.sid] = s
    aw.host.rooms.join("/", f"room{i // 2}", Member(s.sid, "u"))
view = aw.admin
view.snapshot()
rounds = 20
t = time.perf_counter()
for _ in range(rounds):
    snap = view.snapshot()
dt = (time.perf_counter() - t) / rounds
print(
    f"{n} sessions, {len(aw.host.rooms)} rooms: snapshot {dt * 1000:.2f} ms, "
    f"{len(json.dumps(snap))} bytes JSON"
)
