"""What a backend over its API rate costs another key's publishes (issue #15).

One real node (the end-to-end test app, memory broker) with two server API keys, each
with ``api_rate`` = ``api_burst`` = ``--rate`` (default 1000, the default settings). Key
B publishes ``--n`` single events one after the other at half its rate (so B is never
refused) and its latencies are taken; first alone, then while ``--hammer`` tasks publish
with key A as fast as they can (A gets its rate, the rest is refused with 429). Prints
B's median and 99th percentile both ways, and what A's requests got.

    python3 bench/publish_api_bystander.py [--n 500] [--hammer 4] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import start_server  # noqa: E402

KEY_A = "bench-key-a-0123456789abcdef"
KEY_B = "bench-key-b-0123456789abcdef"


async def bystander(url: str, n: int, rate: float) -> list[float]:
    """``n`` publishes with key B at half its rate (B itself is never refused)."""
    took = []
    gap = 2.0 / rate
    async with httpx.AsyncClient(headers={"X-API-Key": KEY_B}) as http:
        next_at = time.perf_counter()
        for i in range(n):
            next_at += gap
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            start = time.perf_counter()
            answer = await http.post(url, json={"event": "b", "room": "bench-b", "data": i})
            took.append(time.perf_counter() - start)
            answer.raise_for_status()
    return took


async def hammer(url: str, stop: asyncio.Event, counts: dict[int, int]) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": KEY_A}) as http:
        while not stop.is_set():
            answer = await http.post(url, json={"event": "a", "room": "bench-a"})
            counts[answer.status_code] = counts.get(answer.status_code, 0) + 1


async def run(url: str, n: int, hammers: int, rate: float) -> None:
    await bystander(url, 20, rate)  # warm up
    alone = await bystander(url, n, rate)
    stop = asyncio.Event()
    counts: dict[int, int] = {}
    tasks = [asyncio.create_task(hammer(url, stop, counts)) for _ in range(hammers)]
    started = time.perf_counter()
    busy = await bystander(url, n, rate)
    elapsed = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*tasks)
    for name, took in (("B alone", alone), (f"B with {hammers} hammering A", busy)):
        ms = sorted(t * 1000 for t in took)
        p99 = ms[int(len(ms) * 0.99) - 1]
        print(f"{name:28} median {statistics.median(ms):6.2f} ms   p99 {p99:6.2f} ms")
    total = sum(counts.values())
    print(
        f"A: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s), "
        f"{counts.get(429, 0)} refused 429, {counts.get(200, 0)} published"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="publishes by key B per phase")
    parser.add_argument("--hammer", type=int, default=4, help="concurrent tasks for key A")
    parser.add_argument("--rate", type=int, default=1000, help="api_rate and api_burst")
    args = parser.parse_args()
    rate = str(args.rate)
    env = {"ANYWIRE_API_KEY": f"{KEY_A},{KEY_B}", "AW_API_RATE": rate, "AW_API_BURST": rate}
    server = start_server(env)
    try:
        asyncio.run(run(server.url + "/anywire/publish", args.n, args.hammer, args.rate))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
