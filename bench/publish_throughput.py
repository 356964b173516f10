"""Publish throughput through one Redis: sequential, concurrent and pipelined publishes.

Starts its own redis-server on a free 127.0.0.1 port, a publishing RedisBroker (a node) in
this process and a subscribing node in a child process (so this process's CPU is the
publisher's alone). For each mode it publishes N room events and prints the rate, the CPU
per publish of this process, of redis-server (INFO cpu) and of the subscribing node
(/proc, 10 ms resolution), the pipelines' sizes, and the
delivery check: the subscribing node received every published event exactly once and in
order (per stream: its offsets, counted against the positions the publishes returned),
and the order of the offsets returned: each task's own to a stream increasing
(concurrent), or in the order the publishes were issued (pipelined). Failed publishes
(BrokerUnavailable) are counted and shown; the rate includes them.

The same script runs against code from before batching (PYTHONPATH=<older checkout>):
its "mean batch" is then "-". Wall rates depend on what else runs on the machine; the
CPU columns much less.

    python3 bench/publish_throughput.py [--n 20000] [--rooms 100] [--concurrency 1,10,100,1000]
    python3 bench/publish_throughput.py --cluster 3   # a 3-master Redis Cluster instead

``--cluster M`` starts an M-master Redis Cluster (tests/rediscluster.py) instead of one
redis-server: the nodes then publish with the stamped, sharded script (one call at a
time per stream to its slot's master: the batcher does not pipeline on a cluster) and
receive on shard channels; the Redis CPU column is the sum over the masters.

Modes: ``sequential`` (one task, each publish awaited), ``concurrent C`` (C tasks, each
awaiting its publishes in a loop), ``pipelined`` (one task issuing ``--window`` publishes
at a time without awaiting each, then awaiting them together).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

from anywire.bench.redisproc import RedisProcess
from anywire.core.frames import StreamPos
from anywire.core.streams import room_stream
from anywire.errors import BrokerUnavailable
from anywire.server.broker import Envelope
from anywire.server.broker_redis import RedisBroker


def redis_cpu(port: int | list[int]) -> float:
    """CPU seconds of the redis-server on ``port`` (or the sum over several)."""
    if isinstance(port, list):
        return sum(redis_cpu(p) for p in port)
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "INFO", "cpu"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the subscribing node (child process) ---------------------------------------------------
async def receive(url: str, rooms: int) -> None:
    """Count deliveries per stream; answer ``check <total> <timeout>`` on stdin with the
    per-stream [count, first, last, in order] once ``total`` arrived (or the timeout)."""
    seen: dict[str, list[Any]] = {}
    total = 0
    arrived = asyncio.Event()

    def deliver(env: Envelope) -> None:
        nonlocal total
        if env.pos is None or env.event != "e":
            return
        stream, _, off = env.pos
        row = seen.get(stream)
        if row is None:
            seen[stream] = [1, off, off, True]
        else:
            row[0] += 1
            row[3] = row[3] and off == row[2] + 1
            row[2] = off
        total += 1
        arrived.set()

    node = RedisBroker(url)
    await node.start(deliver)
    for k in range(rooms):  # it hosts consumers of every room: it receives them all
        await node.want(room_stream("/", f"r{k}"), "bench")
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                return
            _, want_s, timeout_s = line.split()
            deadline = loop.time() + float(timeout_s)
            while total < int(want_s) and loop.time() < deadline:
                arrived.clear()
                try:
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        await arrived.wait()
                except TimeoutError:
                    break
            print(json.dumps({"total": total, "streams": seen}), flush=True)
            seen, total = {}, 0
    finally:
        await node.stop()


# -- the publishing node --------------------------------------------------------------------
class Run:
    def __init__(self, node: RedisBroker, rooms: int) -> None:
        self.node = node
        self.rooms = rooms
        self.positions: list[StreamPos] = []
        self.caller_order_ok = True
        self.failed = {False: 0, True: 0}  # BrokerUnavailable by maybe_published

    def env(self, i: int) -> Envelope:
        return Envelope("room", "/", f"r{i % self.rooms}", "e", i)

    async def task(self, first: int, step: int, n: int) -> None:
        last: dict[str, int] = {}
        for i in range(first, n, step):
            try:
                pos = await self.node.publish(self.env(i))
            except BrokerUnavailable as exc:  # counted and shown, not hidden
                self.failed[exc.maybe_published] += 1
                continue
            self.positions.append(pos)
            if last.get(pos[0], 0) >= pos[2]:
                self.caller_order_ok = False
            last[pos[0]] = pos[2]

    async def pipelined(self, n: int, window: int) -> None:
        for start in range(0, n, window):
            futs = [
                asyncio.ensure_future(self.node.publish(self.env(i)))
                for i in range(start, min(n, start + window))
            ]
            batch = []
            for outcome in await asyncio.gather(*futs, return_exceptions=True):
                if not isinstance(outcome, BrokerUnavailable):
                    batch.append(outcome)
                else:
                    self.failed[outcome.maybe_published] += 1
            last: dict[str, int] = {}
            for pos in batch:  # issued in this order: offsets increase per stream
                if last.get(pos[0], 0) >= pos[2]:
                    self.caller_order_ok = False
                last[pos[0]] = pos[2]
            self.positions.extend(batch)


def check(positions: list[StreamPos], report: dict[str, Any]) -> str:
    sent: dict[str, list[int]] = defaultdict(list)
    for stream, _, off in positions:
        sent[stream].append(off)
    bad = 0
    for stream, offs in sent.items():
        row = report["streams"].get(stream)
        ok = (
            row is not None
            and row[0] == len(offs)
            and row[1] == min(offs)
            and row[2] == max(offs)
            and row[3]
            and len(set(offs)) == len(offs)
            and max(offs) - min(offs) + 1 == len(offs)
        )
        bad += not ok
    extra = len(report["streams"]) - len(sent)
    if bad or extra:
        return f"FAILED ({bad} streams wrong, {extra} unexpected)"
    return f"all {report['total']} once, in order"


async def bench(args: argparse.Namespace, url: str, port: int | list[int]) -> None:
    child = subprocess.Popen(
        [sys.executable, __file__, "--receive", url, "--rooms", str(args.rooms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        node = RedisBroker(url)
        await node.start(lambda env: None)
        if args.lanes:  # another batcher setting than the node's default
            from anywire.redis_batch import PublishBatcher

            node._batcher = PublishBatcher(node.redis, lanes=args.lanes, wait=2.0)
        try:
            modes: list[tuple[str, int]] = [("sequential", 1)]
            modes += [("concurrent", c) for c in args.concurrency]
            modes.append(("pipelined", args.window))
            where = f"a {len(port)}-master cluster" if isinstance(port, list) else "one Redis"
            print(
                f"{args.n} room publishes per mode over {args.rooms} rooms on {where}; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            print(
                f"{'mode':<16}{'publishes/s':>12}{'our CPU us/pub':>16}{'Redis CPU us/pub':>18}"
                f"{'mean batch':>12}{'receiver us':>12}  delivery; order"
            )
            base = None
            for mode, c in modes:
                n = args.n_sequential if mode in ("sequential",) or c == 1 else args.n
                run = Run(node, args.rooms)
                # (No pipelines before issue #18: one script call each, this bench's A/B.)
                counters = node.counters
                b0, k0 = counters.get("pipelines", 0), counters.get("pipelined", 0)
                r0, c0 = redis_cpu(port), proc_cpu(child.pid)
                p0, t0 = time.process_time(), time.perf_counter()
                async with asyncio.timeout(300):
                    if mode == "pipelined":
                        await run.pipelined(n, c)
                    else:
                        await asyncio.gather(*(run.task(k, c, n) for k in range(c)))
                wall = time.perf_counter() - t0
                ours, theirs = time.process_time() - p0, redis_cpu(port) - r0
                batches = counters.get("pipelines", 0) - b0
                commands = counters.get("pipelined", 0) - k0
                expect = len(run.positions)
                child.stdin.write(f"check {expect} {60 if expect == n else 5}\n")
                child.stdin.flush()
                report = json.loads(child.stdout.readline())
                receiver = proc_cpu(child.pid) - c0
                rate = n / wall
                base = base or rate
                label = mode if mode == "sequential" else f"{mode} {c}"
                print(
                    f"{label:<16}{rate:>12,.0f}{ours / n * 1e6:>16.1f}{theirs / n * 1e6:>18.1f}"
                    f"{f'{commands / batches:.1f}' if batches else '-':>12}"
                    f"{receiver / n * 1e6:>12.1f}  "
                    f"{check(run.positions, report)}; "
                    f"{'kept' if run.caller_order_ok else 'BROKEN'}  ({rate / base:.1f}x)"
                )
                if any(run.failed.values()):
                    print(
                        f"{'':<16}failed: {run.failed[False]} not published, "
                        f"{run.failed[True]} maybe published (the rate counts them)"
                    )
        finally:
            await node.stop()
    finally:
        child.stdin.close()
        child.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="publishes per concurrent mode")
    ap.add_argument("--n-sequential", type=int, default=5000, help="publishes, one at a time")
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--concurrency", default="1,10,100,1000")
    ap.add_argument("--window", type=int, default=1000, help="pipelined: publishes in flight")
    ap.add_argument("--lanes", type=int, default=0, help="batcher lanes (0: the default)")
    ap.add_argument(
        "--cluster", type=int, default=0, help="masters of a Redis Cluster (0: one Redis)"
    )
    ap.add_argument("--receive", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receive:
        asyncio.run(receive(args.receive, args.rooms))
        return
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.cluster:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.rediscluster import start_cluster

        cluster = start_cluster(args.cluster)
        try:
            ports = [proc.port for proc in cluster.alive()]
            asyncio.run(bench(args, cluster.url, ports))
        finally:
            cluster.cleanup()
        return
    server = RedisProcess()
    try:
        asyncio.run(bench(args, server.url, server.port))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
