"""What a failover costs the broker: seconds without publishes, and what is reported lost.

Runs each set-up of tests/rediscluster.py with real processes: Sentinel (primary,
replica, 3 Sentinels, down-after 1 s) and a Redis Cluster of 3 masters + 3 replicas
(cluster-node-timeout 1 s). One broker publishes to a room as fast as it can (one
awaited publish at a time, retried with the same idempotency key while it fails); the
primary of the room's stream is SIGKILLed; another broker counts deliveries. Printed per
set-up: seconds from the kill to the first publish accepted again (on Sentinel publishes
fail meanwhile and are retried here; on a cluster redis-py's client retries inside the
call, which blocks), events delivered, `$lost` events and the reader's reconnects.

    python3 bench/redis_failover.py [rounds]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from anywire.errors import BrokerUnavailable
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker
from tests.rediscluster import start_cluster, start_sentinel


async def one(kind: str) -> dict[str, Any]:
    setup: Any = start_sentinel() if kind == "sentinel" else start_cluster(3, replicas=1)
    got: list[Envelope] = []
    a = RedisBroker(setup.url, heartbeat=0.5, backoff_max=0.5)
    b = RedisBroker(setup.url, heartbeat=0.5, backoff_max=0.5)
    await a.start(lambda env: None)
    await b.start(got.append)
    refused = 0
    try:
        if kind == "sentinel":
            victim = setup.primary
        else:
            slot = a.redis.keyslot("aw:{room:/:bench}:h")
            victim = setup.by_port(setup.slot_owner(slot))
        i = 0
        killed_at = back_at = 0.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            i += 1
            env = Envelope("room", "/", "bench", "tick", i, key=f"k{i}")
            while True:
                try:
                    await a.publish(env)
                    break
                except BrokerUnavailable:
                    refused += 1
                    await asyncio.sleep(0.05)
            if killed_at and not back_at:
                back_at = time.monotonic()
            if i == 200:
                victim.kill()
                killed_at = time.monotonic()
            if back_at and i >= 400:
                break
        await asyncio.sleep(1.0)  # the last deliveries (bounded: a figure, not a check)
        ticks = [e.data for e in got if e.event == "tick"]
        return {
            "kind": kind,
            "unavailable_s": back_at - killed_at,
            "refused": refused,
            "published": i,
            "delivered": len(ticks),
            "in_order": ticks == sorted(set(ticks)),
            "lost_events": sum(e.event == "$lost" for e in got),
            "reconnects": b.counters["reconnects"],
        }
    finally:
        await a.stop()
        await b.stop()
        setup.cleanup()


async def main(rounds: int) -> None:
    for r in range(rounds):
        for kind in ("sentinel", "cluster") if r % 2 == 0 else ("cluster", "sentinel"):
            out = await one(kind)
            print(
                f"{out['kind']:8s} no publish accepted for {out['unavailable_s']:.2f} s "
                f"({out['refused']} refused, retried); {out['delivered']}/{out['published']} "
                f"delivered, in order={out['in_order']}, $lost events={out['lost_events']}, "
                f"reconnects={out['reconnects']}"
            )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average {' '.join(load)}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
