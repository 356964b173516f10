"""Where one event's open-loop latency goes inside the server: a per-event timeline.

Runs the ``open`` workload (``anywire.bench.runner.run``, the generator on CPU 1, the
server on CPU 0, as ``bench/compare.py`` does) against a server started under a probe
that records, in the server process:

* for each event, the publisher's due time, when the publisher got to run (``paced``
  yielded: the loop's lag), and when the loop body came back for the next one (the
  event's whole fan-out: anywire's in-memory emit and the raw loop's ``await send()``
  both write every connection before returning);
* every garbage collection (``gc.callbacks``): start, duration, generation, and whether
  it fell inside a fan-out;
* which generation each fan-out's collections were.

Usage::

    python3 bench/open_timeline.py --server aw-ws --rate 10 --secs 10 [--clients 1000]
    python3 bench/open_timeline.py --server raw-ws --rate 50

Prints the client-side p50/p99 (the generator's) beside the server-side figures, and
writes the raw timeline to ``--out`` (JSON). The probe wraps ``anywire.bench.app.paced``
(the schedule both bench apps use), so it adds two clock reads per event and nothing per
delivery.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"


def probe(out: str, argv: list[str]) -> None:
    """In the server process: install the recorders, then run ``argv`` as __main__."""
    import gc
    import time

    import anywire.bench.app as benchapp

    events: list[list[int]] = []  # [due_us, ran_us, done_us, fan-out CPU us]
    gcs: list[list[int]] = []  # [start_us, dur_us, generation, collected, cpu_us]
    started: list[int] = [0, 0]

    def now_us() -> int:
        return time.monotonic_ns() // 1000

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0], started[1] = now_us(), time.thread_time_ns()
        else:
            cpu = (time.thread_time_ns() - started[1]) // 1000
            gcs.append(
                [started[0], now_us() - started[0], info["generation"], info["collected"], cpu]
            )

    gc.callbacks.append(on_gc)
    rounds: list[list[int]] = []  # [start_us, callbacks, cpu_us]: batched writes (anywire)
    from anywire.transports.eager import Batch

    batch_run = Batch._run

    def counted_run(self: Batch) -> None:
        t, c, n = now_us(), time.thread_time_ns(), len(self._pending)
        batch_run(self)
        rounds.append([t, n, (time.thread_time_ns() - c) // 1000])

    Batch._run = counted_run  # type: ignore[method-assign]
    original = benchapp.paced

    async def paced(secs: float, rate: float) -> Any:
        async for due in original(secs, rate):
            ran, cpu = now_us(), time.thread_time_ns()
            yield due
            events.append([due, ran, now_us(), (time.thread_time_ns() - cpu) // 1000])
            if len(events) == census_at // 2:
                before.update(map(id, gc.get_objects(2)))
            if len(events) == census_at:
                take_census()
        dump()

    census: dict[str, Any] = {}
    census_at = int(os.environ.get("TIMELINE_CENSUS_AT", "0"))
    before: set[int] = set()

    def take_census() -> None:
        """What a full collection scans, and what one costs now (a stall: only with
        --census, whose run is for this, not for its latencies)."""
        import collections

        new2 = [o for o in gc.get_objects(2) if id(o) not in before]
        census["gen2_new_since_half"] = len(new2)
        census["gen2_new_top"] = collections.Counter(
            type(o).__qualname__ for o in new2
        ).most_common(15)
        del new2
        objs = gc.get_objects()
        census["tracked"] = len(objs)
        census["frozen"] = gc.get_freeze_count()
        census["top"] = collections.Counter(type(o).__qualname__ for o in objs).most_common(30)
        edges = collections.Counter()
        for o in objs:
            edges[type(o).__qualname__] += len(gc.get_referents(o))
        census["edges"] = sum(edges.values())
        census["edges_top"] = edges.most_common(12)
        big = sorted(objs, key=lambda o: len(gc.get_referents(o)), reverse=True)[:5]
        census["biggest"] = [
            [type(o).__qualname__, len(gc.get_referents(o)), repr(o)[:80]] for o in big
        ]
        del objs, big
        c = time.thread_time_ns()
        gc.collect()
        census["full_collection_cpu_ms"] = (time.thread_time_ns() - c) / 1e6
        c = time.thread_time_ns()
        gc.collect()
        census["again_cpu_ms"] = (time.thread_time_ns() - c) / 1e6

    def dump() -> None:
        data = {"events": events, "gcs": gcs, "rounds": rounds, "census": census}
        Path(out).write_text(json.dumps({**data, "pid": os.getpid()}))

    atexit.register(dump)  # the runner stops the server (SIGINT) before the schedule ends
    benchapp.paced = paced
    sys.argv = argv
    if argv[0] == "-m":  # anywire's bench app: its own module, whose paced is patched
        sys.argv = argv[1:]
        benchapp.main()
    else:
        runpy.run_path(argv[0], run_name="__main__")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _spread(xs: list[float]) -> list[float]:
    """p50, p99 and max, rounded."""
    return [round(pct(xs, 50), 2), round(pct(xs, 99), 2), round(max(xs), 2)] if xs else []


def summarize(data: dict[str, Any], warm_us: int) -> dict[str, Any]:
    """Per-event figures after the first ``warm_us`` of publishing (the generator's
    measurement starts ~0.5 s after publishing does)."""
    events = data["events"]
    if not events:
        return {}
    t0 = events[0][0] + warm_us
    ev = [e for e in events if e[0] >= t0]
    gcs = [g for g in data["gcs"] if g[0] >= t0]
    inside = [g for g in gcs if any(e[1] <= g[0] < e[2] for e in ev)]
    by_gen: dict[int, list[int]] = {}
    for g in gcs:
        by_gen.setdefault(g[2], []).append(g[4])
    rounds = [r for r in data.get("rounds", []) if r[0] >= t0]
    return {
        "events": len(ev),
        "batch rounds: count, callbacks, cpu ms": [
            len(rounds), sum(r[1] for r in rounds), round(sum(r[2] for r in rounds) / 1000, 2)
        ],
        "lag_ms p50/p99/max": _spread([(e[1] - e[0]) / 1000 for e in ev]),
        "fanout_ms p50/p99/max": _spread([(e[2] - e[1]) / 1000 for e in ev]),
        "fanout_cpu_ms p50/p99/max": _spread([e[3] / 1000 for e in ev]),
        "due_to_last_write_ms p50/p99/max": _spread([(e[2] - e[0]) / 1000 for e in ev]),
        "gc per generation: count, total CPU ms, max CPU ms": {
            gen: [len(d), round(sum(d) / 1000, 2), round(max(d) / 1000, 2)]
            for gen, d in sorted(by_gen.items())
        },
        "gc in a fan-out: count, CPU ms": [len(inside), round(sum(g[4] for g in inside) / 1e3, 2)],
    }  # fmt: skip


def main() -> None:
    from anywire.bench.runner import Target, anywire_target, run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--server", choices=("aw-ws", "aw-sse", "raw-ws"), default="aw-ws")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--secs", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument(
        "--census",
        type=int,
        default=0,
        help="after this many events, count the tracked objects and time a full collection",
    )
    parser.add_argument("--out", default=None, help="the timeline JSON (default: a temp file)")
    args, rest = parser.parse_known_args()
    if args.probe:
        probe(args.probe, rest[1:] if rest[:1] == ["--"] else rest)
        return
    out = args.out or tempfile.mktemp(suffix=".json", prefix="timeline-")
    me = [sys.executable, str(Path(__file__).resolve()), "--probe", out, "--"]
    if args.server == "raw-ws":
        tgt = Target(
            "raw ASGI websocket", "raw", {"ws": 1},
            lambda p: [*me, str(PEERS / "raw_app.py"), "--port", str(p)],
        )  # fmt: skip
    else:
        base = anywire_target(["websocket" if args.server == "aw-ws" else "sse"])
        tgt = Target(
            base.name, base.dialect, base.mix,
            lambda p: [*me, "-m", "anywire.bench.app", "--port", str(p)],
        )  # fmt: skip
    os.environ["TIMELINE_CENSUS_AT"] = str(args.census)
    r = run(tgt, "open", args.clients, secs=args.secs, rate=args.rate)
    data = json.loads(Path(out).read_text())
    summary = {
        "server": args.server,
        "rate": args.rate,
        "clients": args.clients,
        "client p50/p99 ms": [round(r["p50_ms"], 2), round(r["p99_ms"], 2)],
        "server cpu": r["server_cpu"],
        **summarize(data, 500_000),
        "census": data.get("census"),
        "timeline": out,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
