"""Where the one-event-per-tick fan-out's latency goes inside the server: a per-event timeline.

Runs the ``fanout`` workload with ``--burst 1`` (``bench/compare.py``'s "one event per
loop tick" section: the server publishes one event per loop iteration, as fast as its
back-pressure allows; ``anywire.bench.runner.run``, server on CPU 0, the C generator on
CPU 1) against anywire's bench app started under a probe that records, in the server:

* every ``emit`` of the publisher: its start (the event's ``ts`` stamp is taken just
  before), end and CPU time (the push to every outbox, and any write made at once);
* every :class:`~anywire.transports.eager.Batch` round: start, end, callbacks, CPU, and
  whether it is the batched-write round (``hops=2``) or the readers' settle round;
* every garbage collection (``gc.callbacks``): start, duration, generation, CPU;
* the process's write() syscalls (``/proc/self/io`` ``syscw``) every 100 events.

Per event it derives "stamp -> last write": the end of the first batched-write round to
start after its emit ended (every connection that had written in the iteration before
waits for that round), or the emit's end when no round was pending. The p99 events are
then described (rounds, collections inside). ``--server raw-ws|node-ws`` runs a peer
without a probe (client-side figures only, same generator, same pacing).

    python3 bench/tick_timeline.py [--server aw-ws] [--secs 10] [--rx-every 0]

Against another checkout: copy this file into it and run it from there (the runner
serves the tree its own file lives in).
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import os
import runpy
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS = ROOT / "bench" / "peers"

from bench.open_timeline import _spread, pct  # noqa: E402  (the same percentiles)


def probe(out: str, argv: list[str]) -> None:
    """In the server process: install the recorders, then run ``argv`` as __main__."""
    import gc
    import time

    from anywire.server.app import Anywire
    from anywire.transports.eager import Batch

    emits: list[list[int]] = []  # [start_us, end_us, cpu_us]
    rounds: list[list[int]] = []  # [start_us, end_us, callbacks, cpu_us, hops]
    gcs: list[list[int]] = []  # [start_us, dur_us, generation, collected, cpu_us]
    io: list[list[int]] = []  # [t_us, syscw, user CPU us, system CPU us]
    started = [0, 0]

    def now_us() -> int:
        return time.monotonic_ns() // 1000

    def syscw() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("syscw:"):
                return int(line.split()[1])
        return 0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0], started[1] = now_us(), time.thread_time_ns()
        else:
            cpu = (time.thread_time_ns() - started[1]) // 1000
            gcs.append(
                [started[0], now_us() - started[0], info["generation"], info["collected"], cpu]
            )

    gc.callbacks.append(on_gc)
    batch_run = Batch._run

    def counted_run(self: Batch) -> None:
        hops = 2 if getattr(self._first, "__func__", None) is Batch._wait else 1
        t, c, n = now_us(), time.thread_time_ns(), len(self._pending)
        batch_run(self)
        rounds.append([t, now_us(), n, (time.thread_time_ns() - c) // 1000, hops])

    Batch._run = counted_run  # type: ignore[method-assign]
    emit = Anywire.emit

    async def timed_emit(self: Any, *args: Any, **kwargs: Any) -> Any:
        t, c = now_us(), time.thread_time_ns()
        try:
            return await emit(self, *args, **kwargs)
        finally:
            emits.append([t, now_us(), (time.thread_time_ns() - c) // 1000])
            if len(emits) % 100 == 1:
                cpu = os.times()
                io.append([now_us(), syscw(), int(cpu.user * 1e6), int(cpu.system * 1e6)])

    Anywire.emit = timed_emit  # type: ignore[method-assign]

    def dump() -> None:
        data = {"emits": emits, "rounds": rounds, "gcs": gcs, "io": io, "pid": os.getpid()}
        Path(out).write_text(json.dumps(data))

    atexit.register(dump)  # the runner stops the server with SIGINT
    sys.argv = argv[1:] if argv[0] == "-m" else argv
    if argv[0] == "-m":
        import anywire.bench.app as benchapp

        benchapp.main()
    else:
        runpy.run_path(argv[0], run_name="__main__")


def summarize(data: dict[str, Any], warm_us: int, span_us: int) -> dict[str, Any]:
    """Per-event figures in the window ``[first emit + warm_us, + span_us]``."""
    import bisect

    emits = data["emits"]
    if not emits:
        return {}
    t0 = emits[0][0] + warm_us
    t1 = t0 + span_us
    ev = [e for e in emits if t0 <= e[0] < t1]
    writes = sorted(r for r in data["rounds"] if r[4] == 2)
    starts = [r[0] for r in writes]
    gcs = [g for g in data["gcs"] if t0 <= g[0] < t1]
    per: list[dict[str, Any]] = []
    for e in ev:
        i = bisect.bisect_left(starts, e[1])
        r = writes[i] if i < len(writes) and writes[i][0] - e[1] < 50_000 else None
        last = r[1] if r is not None else e[1]
        inside = [g for g in gcs if e[0] <= g[0] < last]
        per.append({
            "push_ms": (e[1] - e[0]) / 1000,
            "wait_ms": ((r[0] if r else e[1]) - e[1]) / 1000,
            "round_ms": ((r[1] - r[0]) if r else 0) / 1000,
            "round_n": r[2] if r else 0,
            "total_ms": (last - e[0]) / 1000,
            "gc_ms": sum(g[1] for g in inside) / 1000,
            "gc_gens": [g[2] for g in inside],
        })  # fmt: skip
    totals = [p["total_ms"] for p in per]
    cut = pct(totals, 99)
    tail = [p for p in per if p["total_ms"] >= cut]
    rest = [p for p in per if p["total_ms"] < cut]

    def mean(xs: list[float]) -> float:
        return round(sum(xs) / len(xs), 3) if xs else float("nan")

    def describe(ps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "events": len(ps),
            "mean push / wait / round / total ms": [
                mean([p[k] for p in ps]) for k in ("push_ms", "wait_ms", "round_ms", "total_ms")
            ],
            "share with a collection inside": mean([1.0 if p["gc_gens"] else 0.0 for p in ps]),
            "mean collection ms inside": mean([p["gc_ms"] for p in ps]),
            "mean write-round callbacks": mean([p["round_n"] for p in ps]),
        }

    by_gen: dict[int, list[list[int]]] = {}
    for g in gcs:
        by_gen.setdefault(g[2], []).append(g)
    io = [x for x in data["io"] if t0 <= x[0] < t1]
    secs = span_us / 1e6
    in_rounds = [r for r in data["rounds"] if t0 <= r[0] < t1]
    per_event = {}
    if len(io) > 1 and len(io[0]) > 2:
        n = sum(1 for e in ev if io[0][0] <= e[0] < io[-1][0]) or 1
        per_event = {
            "server user / system CPU us per event (clients each get it)": [
                round((io[-1][2] - io[0][2]) / n, 1), round((io[-1][3] - io[0][3]) / n, 1)
            ]
        }
    return {
        "events": len(ev),
        "events/s": round(len(ev) / secs, 1),
        "write() syscalls/s": round((io[-1][1] - io[0][1]) / ((io[-1][0] - io[0][0]) / 1e6), 1)
        if len(io) > 1 else None,
        **per_event,
        "write rounds (hops 2): count, mean callbacks": [
            sum(r[4] == 2 for r in in_rounds),
            mean([r[2] for r in in_rounds if r[4] == 2]),
        ],
        "settle rounds (hops 1): count, callbacks": [
            sum(r[4] == 1 for r in in_rounds), sum(r[2] for r in in_rounds if r[4] == 1)
        ],
        "push_ms p50/p99/max": _spread([p["push_ms"] for p in per]),
        "push_cpu_ms p50/p99/max": _spread([e[2] / 1000 for e in ev]),
        "round_ms p50/p99/max": _spread([p["round_ms"] for p in per if p["round_n"]]),
        "stamp_to_last_write_ms p50/p99/max": _spread(totals),
        "gc per generation: count, wall ms total, max wall ms, max CPU ms": {
            gen: _collections(d) for gen, d in sorted(by_gen.items())
        },
        "p99 events (stamp -> last write >= p99)": describe(tail),
        "other events": describe(rest),
    }


def _collections(gcs: list[list[int]]) -> list[float]:
    """Count, total wall ms, max wall ms and max CPU ms of some collections."""
    walls, cpus = [g[1] / 1000 for g in gcs], [g[4] / 1000 for g in gcs]
    return [len(gcs), round(sum(walls), 2), round(max(walls), 2), round(max(cpus), 2)]


class Sampler:
    """Samples a process's write() syscalls and user/system CPU from /proc twice a second
    (for the peers, which run without the probe): the pid comes from ``pidfile``."""

    def __init__(self, pidfile: str) -> None:
        import threading

        self.pidfile = pidfile
        self.samples: list[tuple[float, int, float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import time

        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.wait(0.5):
            try:
                pid = int(Path(self.pidfile).read_text())
                io = Path(f"/proc/{pid}/io").read_text().split()
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, ValueError):
                continue
            w = int(io[io.index("syscw:") + 1])
            self.samples.append((time.monotonic(), w, int(stat[11]) / tick, int(stat[12]) / tick))

    def busiest(self) -> dict[str, Any]:
        """Rates over the samples while writes ran near their peak (the measured load)."""
        self.stop.set()
        self.thread.join()
        s = self.samples
        rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(s)]
        if not rates:
            return {}
        peak = sorted(rates)[int(len(rates) * 0.9)]
        busy = [i for i, r in enumerate(rates) if r >= peak / 2]
        a, b = s[busy[0]], s[busy[-1] + 1]
        secs = b[0] - a[0]
        return {"write() syscalls/s": round((b[1] - a[1]) / secs, 1),
                "user / system CPU share": [round((b[2] - a[2]) / secs, 3),
                                            round((b[3] - a[3]) / secs, 3)]}  # fmt: skip


def main() -> None:
    from anywire.bench.runner import Target, anywire_target, run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--server", choices=("aw-ws", "raw-ws", "node-ws"), default="aw-ws")
    parser.add_argument("--secs", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument(
        "--rx-every", type=int, default=None, help="clients' receipts: 0 none, N every N frames"
    )
    parser.add_argument("--node-modules", default="/work/bench-peers/node_modules")
    parser.add_argument("--out", default=None, help="the timeline JSON (default: a temp file)")
    args, rest = parser.parse_known_args()
    if args.probe:
        probe(args.probe, rest[1:] if rest[:1] == ["--"] else rest)
        return
    out = args.out or tempfile.mktemp(suffix=".json", prefix="tick-timeline-")
    me = [sys.executable, str(Path(__file__).resolve()), "--probe", out, "--"]
    pidfile = out + ".pid"
    # The peers run under a shell that notes their pid, for Sampler.
    noted = ["sh", "-c", f'echo $$ > {pidfile}; exec "$@"', "sh"]
    sampler = Sampler(pidfile) if args.server != "aw-ws" else None
    if args.server == "raw-ws":
        tgt = Target(
            "raw ASGI websocket", "raw", {"ws": 1},
            lambda p: [*noted, sys.executable, str(PEERS / "raw_app.py"), "--port", str(p)],
        )  # fmt: skip
    elif args.server == "node-ws":
        node = shutil.which("node") or "node"
        tgt = Target(
            "node socket.io websocket", "sio", {"ws": 1},
            lambda p: [*noted, node, str(PEERS / "node_sio.js"), "--port", str(p)],
            env={"NODE_PATH": args.node_modules},
        )  # fmt: skip
    else:
        base = anywire_target(["websocket"])
        tgt = Target(
            base.name, base.dialect, base.mix,
            lambda p: [*me, "-m", "anywire.bench.app", "--port", str(p)],
        )  # fmt: skip
    r = run(tgt, "fanout", args.clients, secs=args.secs, burst=args.burst, rx_every=args.rx_every)
    summary: dict[str, Any] = {
        "server": args.server,
        "tree": str(ROOT),
        "load": os.getloadavg()[0],
        "deliveries/s": r["rate"],
        "client p50/p99/max ms": [round(r[k], 2) for k in ("p50_ms", "p99_ms", "max_ms")],
        "server cpu": r["server_cpu"],
        "rx_sent": r.get("rx_sent"),
    }  # fmt: skip
    if sampler is not None:
        summary.update(sampler.busiest())
    if args.server == "aw-ws" and Path(out).exists():
        data = json.loads(Path(out).read_text())
        # The generator measures from ~0.5 s after publishing starts, for --secs.
        summary.update(summarize(data, 500_000, int(args.secs * 1e6)))
        summary["timeline"] = out
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
