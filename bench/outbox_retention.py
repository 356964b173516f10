"""What the clients' receipt rule makes the server's outboxes hold under a steady stream.

Every sequenced frame stays in its session's outbox until the client's ``rx`` covers it
(docs/protocol.md 6.4, 6.5), so the receipt rule sets how much a node holds for clients
that keep up. This drives the real core objects, no sockets: ``--clients`` server
sessions (:class:`anywire.core.session.ServerSession`) each receive ``--rate`` events a
second, and each has a client following a receipt rule exactly as the reference clients
do (:class:`anywire.core.receipts.Receipts`, one seeded draw per client, the time limit
checked at every message). After ``--secs`` of simulated time (past the warm-up, so the
draws have spread) it reports frames held per client (mean and most) and the memory the
outboxes hold (tracemalloc: what is freed when every client acknowledges everything).

``--shared`` (default): one frame object per event, shared by every session (a room
broadcast, as the server builds it: the sessions' outboxes hold pointers to it).
``--unique``: a frame object per session and event (per-user events), the costly case.

    python3 bench/outbox_retention.py --clients 1000 --frames 64
    python3 bench/outbox_retention.py --clients 10000 --frames 250 --unique
    python3 bench/outbox_retention.py --clients 10000 --frames 250 --rate 5

``--frames``/``--bytes``/``--ms`` give the rule (default: what ``Settings()`` advertises).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anywire.core.codec import JsonCodec, Outgoing
from anywire.core.receipts import Receipts, RxRule
from anywire.core.session import ServerSession
from anywire.core.settings import Settings


def _event(n: int, size: int, codec: JsonCodec) -> Outgoing:
    out = Outgoing("event", {"e": "m", "d": {"ts": n, "p": "x" * max(1, size - 60)}, "r": "bench"})
    out.frame(codec, 1)  # encoded once, as the writer does: sets its size, caches its body
    return out


def measure(
    clients: int, rule: RxRule, rate: float, secs: float, size: int, shared: bool, seed: int = 1
) -> dict[str, float]:
    """Simulate ``secs`` of a steady stream; frames and bytes the outboxes hold at the end."""
    settings = Settings()
    codec = JsonCodec()
    sessions = [ServerSession(f"s{i}", None, "/", settings, 0.0) for i in range(clients)]
    receipts = [Receipts(rule, random.Random(seed * 1_000_003 + i).random) for i in range(clients)]
    acked = [0] * clients
    events = int(secs * rate)
    sent = 0
    held_sum = 0
    held_max = 0
    samples = 0
    tracemalloc.start()
    for n in range(events):
        now = n / rate
        out = _event(n, size, codec) if shared else None
        for i, sess in enumerate(sessions):
            frame = out if out is not None else _event(n, size, codec)
            seq = sess.push(frame)
            r = receipts[i]
            r.received(frame.size + 10)  # the frame on the wire: its body and its envelope
            if r.due(seq - acked[i], now):
                sess.acknowledge(seq)
                acked[i] = seq
                r.start()
                sent += 1
        if n >= events // 2:  # the second half: the draws have spread by then
            lens = [sess.out_seq - acked[i] for i, sess in enumerate(sessions)]
            held_sum += sum(lens)
            held_max = max(held_max, *lens)
            samples += 1
        del out
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    held_now = sum(s.out_seq - a for s, a in zip(sessions, acked, strict=True))
    for sess in sessions:
        sess.acknowledge(sess.out_seq)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "clients": clients,
        "frames": rule.frames,
        "rate": rate,
        "rx_per_client_s": sent / clients / secs,
        "events_per_rx": events * clients / sent if sent else 0.0,
        "held_mean": held_sum / samples / clients,
        "held_max": held_max,
        "held_bytes_at_end": before - after,
        "bytes_per_held_frame": (before - after) / held_now if held_now else 0.0,
        "bytes_per_client_at_end": (before - after) / clients,
    }


def main() -> None:
    default = Settings().client_rx()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=50.0, help="events per second per client")
    p.add_argument("--secs", type=float, default=20.0, help="simulated seconds")
    p.add_argument("--size", type=int, default=100, help="approximate event bytes")
    p.add_argument("--frames", type=int, default=default.frames)
    p.add_argument("--bytes", type=int, default=default.bytes)
    p.add_argument("--ms", type=int, default=default.ms)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--shared", dest="shared", action="store_true", default=True)
    mode.add_argument("--unique", dest="shared", action="store_false")
    a = p.parse_args()
    rule = RxRule(a.frames, a.bytes, a.ms)
    result = measure(a.clients, rule, a.rate, a.secs, a.size, a.shared)
    print(json.dumps({"shared": a.shared, **result}))


if __name__ == "__main__":
    main()
