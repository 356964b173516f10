"""Where an idle connection's memory goes: tracemalloc on a real server, grouped by file.

    python3 bench/memory_breakdown.py                      # anywire ws, sse and the raw loop
    python3 bench/memory_breakdown.py --clients 2000 --only aw-ws --top 25 --by lineno

Each target is started as in ``bench/compare.py`` (fresh process, pinned), but under
``tracemalloc`` (``PYTHONTRACEMALLOC=1``, one frame: an allocation belongs to the file of
the line that made it). The bench app's ``GET /ctl/memory`` returns the live allocations
by file after a collection; the difference between the snapshot with the idle clients
connected and the one before, divided by the clients, is printed per layer (uvicorn,
websockets, h11/httptools, sse-starlette/starlette/anyio, asyncio, anywire per module)
beside RSS per connection. Tracing costs memory and time of its own, so RSS here is
higher than in an untraced run; use ``compare.py``'s idle figure for RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare import targets  # noqa: E402

from anywire.bench.generator import Generator  # noqa: E402
from anywire.bench.runner import Server, raise_nofile, split  # noqa: E402

# Path fragment -> layer, first match wins.
LAYERS = [
    ("/uvicorn/", "uvicorn"),
    ("/websockets/", "websockets"),
    ("/h11/", "h11"),
    ("/httptools/", "httptools"),
    ("/sse_starlette/", "sse-starlette"),
    ("/starlette/", "starlette"),
    ("/anyio/", "anyio"),
    ("/litestar/", "litestar"),
    # C allocations (uvloop's transports and handles, task objects) made while the
    # only Python frame is asyncio.run's.
    ("/asyncio/runners.py", "loop internals (C)"),
    ("/asyncio/", "asyncio (stdlib)"),
    ("/anywire/", "anywire"),
    ("/bench/peers/", "raw app"),
]


def layer(filename: str) -> str:
    filename = filename.split(" <- ", 1)[0]
    filename = filename.rsplit(":", 1)[0] if filename[-1:].isdigit() else filename
    for fragment, name in LAYERS:
        if fragment in filename:
            if name == "anywire":
                return "anywire " + filename.split("/anywire/", 1)[1]
            return name
    return "other: " + filename.rsplit("/", 1)[-1]


# Coarser: the stack's layers, and anywire by package.
COARSE = [
    ("anywire core", "anywire core (session, rooms, streams)"),
    ("anywire transports", "anywire transports (link, reader, writer, stream)"),
    ("anywire server", "anywire server (host, auth, tracking, protocol subclasses)"),
    ("anywire bench", "bench app"),
    ("raw app", "bench app"),
    ("uvicorn", "uvicorn"),
    ("websockets", "protocol: websockets / h11 / httptools"),
    ("h11", "protocol: websockets / h11 / httptools"),
    ("httptools", "protocol: websockets / h11 / httptools"),
    ("sse-starlette", "sse-starlette / starlette / anyio"),
    ("starlette", "sse-starlette / starlette / anyio"),
    ("anyio", "sse-starlette / starlette / anyio"),
    ("asyncio", "asyncio (tasks, futures, queues, events)"),
    ("loop internals", "loop internals (C: uvloop transports, task objects)"),
]


def coarse(name: str) -> str:
    for prefix, group in COARSE:
        if name.startswith(prefix):
            return group
    return "other (stdlib: weakref, uuid, secrets, json...)"


def traced(server: Server, by: str) -> dict[str, list[int]]:
    with urllib.request.urlopen(server.url(f"/ctl/memory?by={by}"), timeout=60) as r:
        return dict(json.loads(r.read()))


def breakdown(key: str, clients: int, settle: float, by: str, frames: int) -> dict[str, Any]:
    target = targets(None)[key]
    target = replace(target, env={**target.env, "PYTHONTRACEMALLOC": str(frames)})
    server = Server(target, 0)
    gen = None
    try:
        time.sleep(0.3)
        before, rss0 = traced(server, by), server.rss_kb()
        gen = Generator(server.port, target.dialect, "idle", split(clients, target.mix), cpu=1)
        ready = gen.ready()
        time.sleep(settle)
        after, rss1 = traced(server, by), server.rss_kb()
    finally:
        if gen is not None:
            gen.stop()
        server.stop()
    by_layer: dict[str, float] = {}
    by_file: dict[str, tuple[float, float]] = {}
    for name in set(before) | set(after):
        size = after.get(name, [0, 0])[0] - before.get(name, [0, 0])[0]
        count = after.get(name, [0, 0])[1] - before.get(name, [0, 0])[1]
        by_layer[layer(name)] = by_layer.get(layer(name), 0) + size
        by_file[name] = (size, count)
    return {
        "target": target.name,
        "ready": ready.get("ready"),
        "rss_kb": (rss1 - rss0) / clients,
        "traced_kb": sum(by_layer.values()) / 1024 / clients,
        "layers": {k: v / 1024 / clients for k, v in by_layer.items()},
        "files": {k: (s / 1024 / clients, c / clients) for k, (s, c) in by_file.items()},
    }


def show(res: dict[str, Any], top: int) -> None:
    print(f"\n## {res['target']}: {res['ready']} idle connections")
    print(f"RSS {res['rss_kb']:.1f} KB/conn (traced run), traced {res['traced_kb']:.1f} KB/conn\n")
    groups: dict[str, float] = {}
    for name, kb in res["layers"].items():
        groups[coarse(name)] = groups.get(coarse(name), 0.0) + kb
    print("| part | KB/conn |\n|---|---|")
    for name, kb in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {kb:.2f} |")
    print("\n| layer | KB/conn |\n|---|---|")
    for name, kb in sorted(res["layers"].items(), key=lambda kv: -kv[1]):
        if abs(kb) >= 0.05:
            print(f"| {name} | {kb:.2f} |")
    print(f"\ntop {top} files (KB/conn, blocks/conn):")
    for name, (kb, count) in sorted(res["files"].items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {kb:6.2f} KB {count:6.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--only", default="raw-ws,aw-ws,aw-sse")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--by", choices=("filename", "lineno", "traceback"), default="filename")
    parser.add_argument("--frames", type=int, default=1, help="stack depth traced")
    args = parser.parse_args()
    raise_nofile()
    for key in args.only.split(","):
        show(breakdown(key, args.clients, args.settle, args.by, args.frames), args.top)


if __name__ == "__main__":
    main()
