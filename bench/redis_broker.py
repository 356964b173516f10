"""Redis broker figures: publish rate, cross-node delivery latency, gap-fill cost.

Starts its own redis-server (anywire.bench.redisproc.RedisProcess: a free 127.0.0.1 port,
no disk) and two RedisBroker instances (two "nodes") in this process; node A publishes N
room events one after another (each awaits its Lua script), node B counts deliveries.
Then B's subscription is killed mid-stream (CLIENT KILL TYPE pubsub) to measure recovery
from history.

    python3 bench/redis_broker.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from anywire.bench.redisproc import RedisProcess
from anywire.core.streams import room_stream
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker


async def run(n: int, url: str, redis: RedisProcess) -> None:
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    got: list[int] = []
    done = asyncio.Event()

    def deliver_b(env: Envelope) -> None:
        if env.event != "e":
            return
        i = env.data
        got.append(i)
        latencies.append(time.perf_counter() - sent_at[i])
        if len(got) == n:
            done.set()

    a, b = RedisBroker(url), RedisBroker(url)
    await a.start(lambda env: None)
    await b.start(deliver_b)
    await b.want(room_stream("/", "bench"), "bench")  # B hosts the room: it receives it
    try:
        t0 = time.perf_counter()
        for i in range(n):
            sent_at[i] = time.perf_counter()
            await a.publish(Envelope("room", "/", "bench", "e", i))
        publish_s = time.perf_counter() - t0
        async with asyncio.timeout(60):
            await done.wait()
        total_s = time.perf_counter() - t0
        lat = sorted(latencies)
        print(f"publish: {n} events in {publish_s:.2f} s = {n / publish_s:,.0f}/s (sequential)")
        print(f"delivered on node B: all {len(got)} in order={got == list(range(n))}, "
              f"{total_s:.2f} s after the first publish")
        print(f"latency publish->deliver: median {statistics.median(lat) * 1000:.2f} ms, "
              f"p99 {lat[int(len(lat) * 0.99)] * 1000:.2f} ms")
        # Kill B's subscription repeatedly while A publishes: gaps come from history.
        got.clear()
        latencies.clear()
        done.clear()
        t0 = time.perf_counter()
        for i in range(n, 2 * n):
            sent_at[i] = time.perf_counter()
            await a.publish(Envelope("room", "/", "bench", "e", i))
            if i % (n // 5) == 0:
                redis.cli("CLIENT", "KILL", "TYPE", "pubsub").check_returncode()
        n_target = n

        def complete() -> bool:
            return len(got) >= n_target

        async with asyncio.timeout(60):
            while not complete():
                await asyncio.sleep(0.01)
        total_s = time.perf_counter() - t0
        print(f"with 5 subscription kills: all {len(got)} delivered, "
              f"in order={got == list(range(n, 2 * n))}, {total_s:.2f} s; "
              f"filled from history: {b.counters['filled']}, reconnects: "
              f"{b.counters['reconnects']}, lost: {b.counters['lost']}")
    finally:
        await a.stop()
        await b.stop()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    redis = RedisProcess()
    try:
        asyncio.run(run(n, redis.url, redis))
        info = redis.cli("INFO", "memory").stdout.decode()
        used = next(line for line in info.splitlines() if line.startswith("used_memory_human"))
        print(f"Redis memory after {2 * n} events in one stream (history 1000): {used}")
    finally:
        redis.stop()

if __name__ == "__main__":
    main()
