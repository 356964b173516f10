"""Many cores: ``anywire serve --workers N --redis URL``, deliveries per server CPU-second.

    python3 bench/workers.py                    # 1 and 2 workers, 3 rounds of 10 s each
    python3 bench/workers.py --workers 1,2,4 --clients 2000 --secs 5 --rounds 1

Starts its own redis-server on a free 127.0.0.1 port, then for each worker count (rounds
interleaved, so a busy spell on a shared machine hits every count) the real command line,
``python -m anywire.server.cli serve anywire.bench.served:aw --redis URL [--workers N]``,
in a session of its own. The C load generator (:mod:`anywire.bench.generator`) opens
``--clients`` WebSocket clients on the one port (the kernel spreads them over the
workers), one worker publishes bursts to the room through Redis (``POST /ctl/start``)
and every worker delivers to its share of the clients.

The figure that matters is **deliveries per server CPU-second**: the utime + stime of
every process of the server's session (the parent and its workers, from /proc) over the
measured window. It holds on a shared machine, where other processes take cores away;
deliveries/s (wall) does not, and is printed beside it for what it is worth.
redis-server's CPU is shown apart (it is the same for any number of workers: one script
per publish, one bus message per worker).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anywire.bench.generator import Generator  # noqa: E402
from anywire.bench.redisproc import RedisProcess  # noqa: E402
from anywire.bench.runner import free_port, raise_nofile  # noqa: E402

SECRET = "bench-workers-shared-secret-0123456789"
APP = "anywire.bench.served:aw"
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3 onward)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def session_cpu(sid: int) -> dict[int, float]:
    """CPU seconds (user + system) of every live process in session ``sid``, by pid."""
    out: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat(int(entry))
        except OSError:  # ended meanwhile
            continue
        if int(fields[3]) == sid:  # field 6: session id
            out[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def clients_of(pids: list[int], port: int) -> dict[int, int]:
    """Established connections to ``port`` held by each of ``pids`` (how the kernel spread
    the clients over the workers)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    out: dict[int, int] = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        count += 1
        out[pid] = count
    return out


class Redis(RedisProcess):
    """A throwaway redis-server on a free port, with its CPU time."""

    def cpu(self) -> float:
        fields = _stat(self.proc.pid)
        return (int(fields[11]) + int(fields[12])) / TICK

    def flush(self) -> None:
        self.cli("flushall")


class Served:
    """``anywire serve anywire.bench.served:aw --redis URL [--workers N]`` in its own session."""

    def __init__(self, workers: int, redis: str, extra: list[str]) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "anywire.server.cli", "serve", APP, "--port",
               str(self.port), "--redis", redis, "--log-level", "warning", *extra]  # fmt: skip
        if workers > 1:
            cmd += ["--workers", str(workers)]
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "ANYWIRE_SECRET": SECRET, "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, start_new_session=True
        )
        self.workers = workers
        deadline = time.monotonic() + 30
        while len(self.nodes()) < workers:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"anywire serve --workers {workers} did not start")
            time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def nodes(self, tries: int = 20) -> set[str]:
        """The node ids answering on the port (fresh connections, spread by the kernel)."""
        seen: set[str] = set()
        for _ in range(tries):
            try:
                with urllib.request.urlopen(self.url("/anywire/health"), timeout=2) as r:
                    seen.add(json.loads(r.read())["node"])
            except OSError:
                return seen
            if len(seen) >= self.workers:
                break
        return seen

    def start_publishing(self, secs: float, size: int, burst: int) -> None:
        query = f"?secs={secs}&size={size}&burst={burst}"
        req = urllib.request.Request(self.url(f"/ctl/start{query}"), method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the parent passes it on to the workers
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def one_run(workers: int, redis: Redis, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement on a fresh server; returns its figures."""
    redis.flush()
    server = Served(workers, redis.url, args.serve_arg or [])
    gen = None
    try:
        gen = Generator(server.port, "anywire", "fanout", {"ws": args.clients}, args.size, None)
        ready = gen.ready()
        time.sleep(0.3)
        spread = clients_of(list(session_cpu(server.proc.pid)), server.port)
        server.start_publishing(args.secs + 2.0, args.size, args.burst)
        time.sleep(0.5)  # past the publisher's start
        cpu0, rcpu0, t0 = session_cpu(server.proc.pid), redis.cpu(), time.monotonic()
        spies = _spy(args.py_spy, workers, [p for p, n in spread.items() if n], args.secs)
        result = gen.measure(args.secs)
        for spy in spies:
            spy.wait(timeout=30)
        wall = time.monotonic() - t0
        cpu1, rcpu1 = session_cpu(server.proc.pid), redis.cpu()
    finally:
        if gen is not None:
            gen.stop()
        server.stop()
    per_pid = {pid: round(cpu1[pid] - cpu0.get(pid, 0.0), 2) for pid in cpu1}
    cpu = sum(per_pid.values())
    deliveries = int(result["deliveries"])
    return {
        "workers": workers,
        "clients": args.clients,
        "ready": ready["ready"],
        "errors": int(result["errors"]) + int(result["closed"]) + int(ready["failed"]),
        "wall_s": round(wall, 2),
        "deliveries": deliveries,
        "rate": round(deliveries / wall, 1),
        "server_cpu_s": round(cpu, 2),
        "per_cpu_s": round(deliveries / cpu, 1) if cpu else 0.0,
        "cpu_by_pid": per_pid,
        "clients_by_pid": {pid: n for pid, n in spread.items() if n > 0},
        "redis_cpu_s": round(rcpu1 - rcpu0, 2),
        "p50_ms": result["lat_us"]["p50"] / 1000,
        "p99_ms": result["lat_us"]["p99"] / 1000,
        "gen_cpu": result["gen_cpu"],
    }


def _spy(folder: str | None, workers: int, pids: list[int], secs: float) -> list[Any]:
    """With ``--py-spy DIR``: sample each worker during the window (collapsed stacks,
    ``DIR/w<workers>-<pid>.txt``; CPU time only, idle waits left out)."""
    if not folder:
        return []
    Path(folder).mkdir(parents=True, exist_ok=True)
    spies = []
    for pid in pids:
        out = f"{folder}/w{workers}-{pid}.txt"
        cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(secs)),
               "--format", "raw", "--rate", "200", "--nonblocking", "-o", out]  # fmt: skip
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--secs", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument(
        "--py-spy", default=None, metavar="DIR", help="profile every worker into DIR"
    )
    parser.add_argument("--json", default=None, help="also write the runs to this file")
    parser.add_argument(
        "--serve-arg", action="append", help="an extra argument for anywire serve (repeat)"
    )
    args = parser.parse_args()
    raise_nofile()
    counts = [int(x) for x in args.workers.split(",")]
    redis = Redis()
    runs: list[dict[str, Any]] = []
    try:
        for rnd in range(args.rounds):
            for n in counts:
                r = one_run(n, redis, args)
                runs.append(r)
                print(
                    f"round {rnd + 1} workers {n}: {r['rate']:,.0f} deliveries/s (wall), "
                    f"server CPU {r['server_cpu_s']:.2f} s -> {r['per_cpu_s']:,.0f} "
                    f"deliveries/CPU-s; by pid {r['cpu_by_pid']} clients {r['clients_by_pid']}; "
                    f"redis CPU {r['redis_cpu_s']:.2f} s; p50/p99 {r['p50_ms']:.1f}/"
                    f"{r['p99_ms']:.1f} ms; errors {r['errors']}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        redis.stop()
    print(f"\n{args.clients} WebSocket clients, one room, bursts of {args.burst}, "
          f"{args.secs:.0f} s x {args.rounds} rounds (median per count), load before "
          f"{os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print("| workers | deliveries/s (wall) | server CPU-s | deliveries per CPU-s | "
          "vs 1 worker | redis CPU-s | p50 / p99 ms | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for n in counts:
        mine = [r for r in runs if r["workers"] == n]
        per = statistics.median(r["per_cpu_s"] for r in mine)
        base = base if base is not None else per
        print(
            f"| {n} | {statistics.median(r['rate'] for r in mine):,.0f} | "
            f"{statistics.median(r['server_cpu_s'] for r in mine):.2f} | {per:,.0f} | "
            f"{per / base:.2f}x | {statistics.median(r['redis_cpu_s'] for r in mine):.2f} | "
            f"{statistics.median(r['p50_ms'] for r in mine):.1f} / "
            f"{statistics.median(r['p99_ms'] for r in mine):.1f} | "
            f"{sum(r['errors'] for r in mine)} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
