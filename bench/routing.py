"""Interest routing: what each node receives, and deliveries per server CPU-second, as
nodes are added.

    python3 bench/routing.py                          # 1, 2, 4 and 8 nodes
    python3 bench/routing.py --nodes 8 --before /work/main   # also the code of another
                                                             # checkout (the single bus)

Starts its own redis-server on a free 127.0.0.1 port and, for each node count, that many
real node processes (``python -m anywire.server.cli serve anywire.bench.served:aw
--redis URL``). ``--rooms`` rooms, each with ``--members`` WebSocket clients (the Python
client, in this process), are spread over the nodes: room k's members on node k mod N,
and for every other room the second member on the next node (rooms on one or two
nodes). A publisher process sends ``--events`` events, round robin over the rooms,
straight to Redis (:class:`~anywire.publisher.AsyncPublisher`: the nodes' own script and
channel). The run ends when every client has every event of its room.

Per node it prints the **share of the events it received that it hosts** (events of a
room with a member on it, over ``broker_received``): with interest routing close to 1.
"before" is what the same node would have received on the single bus of issue #17 and
earlier (every event): hosted / published. And the **deliveries per server CPU-second**:
the clients' events over the utime + stime of every node process (from /proc) during
the run (``idle CPU/node-s``: what a node spends doing nothing, timers and heartbeats,
measured for ``--idle`` seconds before; it is part of the figure, and grows with the
run's wall time and the node count). ``--before PATH`` runs the same rounds with the
nodes and the publisher imported from another checkout (e.g. main before #18) for a
measured comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anywire.bench.redisproc import RedisProcess  # noqa: E402
from anywire.bench.runner import free_port  # noqa: E402
from anywire.clients.python import Client  # noqa: E402

SECRET = "bench-routing-shared-secret-0123456789"
TICK = os.sysconf("SC_CLK_TCK")

PUBLISHER = """
import asyncio, sys
from anywire.publisher import AsyncPublisher
url, events, rooms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    pub = AsyncPublisher(url)
    try:
        for i in range(events):
            await pub.emit("tick", i, room=f"r{i % rooms}")
    finally:
        await pub.aclose()
asyncio.run(main())
"""


def cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@dataclass
class Node:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self) -> int:
        return int(get_json(self.url + "/anywire/metrics?format=json")["broker_received"])


def start_node(redis_url: str, code: Path) -> Node:
    port = free_port()
    env = {**os.environ, "ANYWIRE_SECRET": SECRET, "PYTHONPATH": str(code)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "anywire.server.cli", "serve", "anywire.bench.served:aw",
         "--port", str(port), "--redis", redis_url, "--log-level", "warning"],
        cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    node = Node(port, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            get_json(node.url + "/anywire/health")
            return node
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"node on port {port} did not start")


def layout(rooms: int, members: int, nodes: int) -> list[list[int]]:
    """For each room, the node of each member."""
    out = []
    for k in range(rooms):
        first = k % nodes
        second = (first + 1) % nodes if k % 2 else first
        out.append([first if m % 2 == 0 else second for m in range(members)])
    return out


async def one_run(
    redis_url: str, code: Path, nodes_n: int, args: argparse.Namespace
) -> dict[str, Any]:
    nodes = [start_node(redis_url, code) for _ in range(nodes_n)]
    clients: list[Client] = []
    got = [0]
    done = asyncio.Event()
    try:
        plan = layout(args.rooms, args.members, nodes_n)
        total = sum(
            len(plan[k]) * len(range(k, args.events, args.rooms)) for k in range(args.rooms)
        )

        def on_tick(_: Any) -> None:
            got[0] += 1
            if got[0] >= total:
                done.set()

        for k, where in enumerate(plan):
            for node in where:
                c = Client(nodes[node].url, None, transports=("websocket",))
                c.on("tick")(on_tick)
                clients.append(c)
                await c.connect()
                await c.join(f"r{k}")
        await asyncio.sleep(0.5)  # joins settled (subscriptions confirmed before answers)
        # What the nodes spend doing nothing (timers, heartbeats), per node-second.
        idle0 = [cpu(n.proc.pid) for n in nodes]
        await asyncio.sleep(args.idle)
        idle = sum(cpu(n.proc.pid) - c0 for n, c0 in zip(nodes, idle0, strict=True))
        received0 = [n.received() for n in nodes]
        cpu0 = [cpu(n.proc.pid) for n in nodes]
        start = time.monotonic()
        pub = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, redis_url, str(args.events), str(args.rooms)],
            env={**os.environ, "PYTHONPATH": str(code)},
            cwd=code,  # python -c puts the working directory first on the path
        )
        try:
            try:
                async with asyncio.timeout(args.timeout):
                    await done.wait()
            except TimeoutError:
                raise SystemExit(f"{nodes_n} nodes: {got[0]} of {total} deliveries") from None
        finally:
            pub.wait(60)
        wall = time.monotonic() - start
        cpu_s = sum(cpu(n.proc.pid) - c0 for n, c0 in zip(nodes, cpu0, strict=True))
        received = [n.received() - r0 for n, r0 in zip(nodes, received0, strict=True)]
        per_room = [len(range(k, args.events, args.rooms)) for k in range(args.rooms)]
        hosted = [
            sum(per_room[k] for k in range(args.rooms) if i in plan[k]) for i in range(nodes_n)
        ]
        return {
            "nodes": nodes_n,
            "deliveries": got[0],
            "cpu": cpu_s,
            "wall": wall,
            "idle": idle / (args.idle * nodes_n),
            "received": received,
            "hosted": hosted,
            "share": [h / r if r else 1.0 for h, r in zip(hosted, received, strict=True)],
            "share_bus": [h / args.events for h in hosted],
        }
    finally:
        for c in clients:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(c.close(), 5)
        for n in nodes:
            n.proc.terminate()
        for n in nodes:
            try:
                n.proc.wait(10)
            except subprocess.TimeoutExpired:
                n.proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="1,2,4,8", help="node counts, comma-separated")
    parser.add_argument("--rooms", type=int, default=32)
    parser.add_argument("--members", type=int, default=2, help="clients per room")
    parser.add_argument("--events", type=int, default=20_000, help="events per run (bounded)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measured")
    parser.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    redis = RedisProcess()
    url = redis.url
    codes = [("routing", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    try:
        print(
            f"{args.rooms} rooms x {args.members} clients, {args.events} events, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'code':8} {'nodes':>5} {'deliveries':>10} {'node CPU s':>10} "
            f"{'deliv/CPU-s':>11} {'recv/node':>9} {'share min':>9} {'share avg':>9} "
            f"{'bus share':>9} {'wall s':>6} {'idle CPU/node-s':>15}"
        )
        for n in counts:
            for name, code in codes:  # interleaved: a busy spell hits both
                r = asyncio.run(one_run(url, code, n, args))
                share = r["share"]
                print(
                    f"{name:8} {n:>5} {r['deliveries']:>10} {r['cpu']:>10.2f} "
                    f"{r['deliveries'] / max(r['cpu'], 1e-9):>11,.0f} "
                    f"{sum(r['received']) / n:>9.0f} {min(share):>9.2f} "
                    f"{sum(share) / n:>9.2f} {sum(r['share_bus']) / n:>9.2f} "
                    f"{r['wall']:>6.1f} {r['idle']:>15.3f}",
                    flush=True,
                )
                redis.cli("flushall")
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
