"""anywire side by side with what users would pick instead, in one run on one machine.

    python3 bench/compare.py                 # full run (~15 min), prints the tables
    python3 bench/compare.py --write-doc     # ... and updates docs/benchmarks.md + plot
    python3 bench/compare.py --quick         # 2 s per point, fewer points (a smoke run)
    python3 bench/compare.py --sections open,burst1   # only those sections (not the doc)
    python3 bench/compare.py --sections bandwidth     # bytes per delivery (~4 min)

Every point starts a fresh server pinned to CPU 0 and the C load generator pinned to
CPU 1 (``taskset``), so each server is measured alone. Servers:

* anywire on WebSocket, SSE and long-poll (``anywire.bench.app``);
* python-socketio on the same uvicorn, WebSocket and polling (``bench/peers/sio_app.py``);
* a raw ASGI WebSocket broadcast loop on the same uvicorn (``bench/peers/raw_app.py``),
  the per-frame limit of this stack;
* Node socket.io, WebSocket and polling (``bench/peers/node_sio.js``), when socket.io is
  installed in a scratch directory (``--node-modules``, default /work/bench-peers).

Workloads: fan-out to one room (deliveries/s and latency, per client count), the same
room at fixed offered loads (open loop: latency per events/s published, ``--rates``), sequential
echo with ack (round trips/s, RTT), idle connections (KB per connection, setup time),
the most idle WebSocket connections one node holds, (with ``--redis``) fan-out
across two nodes through Redis, and bytes on the wire per delivery per transport, codec
and WebSocket deflate (``anywire.bench.bandwidth``, its own Python clients; written to
its own block of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anywire.bench import bandwidth  # noqa: E402
from anywire.bench.runner import Target, anywire_target, raise_nofile, run  # noqa: E402

PY = sys.executable
PEERS = ROOT / "bench" / "peers"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks-fanout.png"
LATENCY_PLOT = ROOT / "docs" / "benchmarks-latency.png"
SECTIONS = ("fanout", "burst1", "open", "echo", "idle", "maxconns", "redis", "bandwidth")
# The open-loop section: anywire on each transport beside the raw loop and Node socket.io.
OPEN_KEYS = ("aw-ws", "aw-sse", "aw-poll", "raw-ws", "node-ws")
RESULTS = ROOT / "bench" / "results" / "latest.json"
START, END = "<!-- results:start -->", "<!-- results:end -->"
BW_START, BW_END = "<!-- bandwidth:start -->", "<!-- bandwidth:end -->"


def targets(node_modules: Path | None) -> dict[str, Target]:
    """Every server of the comparison, by short name."""
    out = {
        "aw-ws": anywire_target(["websocket"]),
        "aw-sse": anywire_target(["sse"]),
        "aw-poll": anywire_target(["longpoll"]),
        "raw-ws": Target(
            "raw ASGI websocket", "raw", {"ws": 1},
            lambda p: [PY, str(PEERS / "raw_app.py"), "--port", str(p)],
        ),
        "sio-ws": Target(
            "python-socketio websocket", "sio", {"ws": 1},
            lambda p: [PY, str(PEERS / "sio_app.py"), "--port", str(p)],
        ),
        "sio-poll": Target(
            "python-socketio polling", "sio", {"poll": 1},
            lambda p: [PY, str(PEERS / "sio_app.py"), "--port", str(p)],
        ),
    }  # fmt: skip
    if node_modules is not None:
        env = {"NODE_PATH": str(node_modules)}
        node = shutil.which("node") or "node"
        for name, kind, label in (("node-ws", "ws", "websocket"), ("node-poll", "poll", "polling")):
            out[name] = Target(
                f"node socket.io {label}",
                "sio",
                {kind: 1},
                lambda p: [node, str(PEERS / "node_sio.js"), "--port", str(p)],
                env=env,
            )
    return out


def find_node_modules(path: str) -> Path | None:
    modules = Path(path) / "node_modules"
    if shutil.which("node") and (modules / "socket.io" / "package.json").exists():
        return modules
    print(
        f"note: Node socket.io not found in {modules}; to add its columns run\n"
        f"  mkdir -p {path} && cd {path} && npm init -y && npm install socket.io@4",
        file=sys.stderr,
    )
    return None


def machine(node_modules: Path | None) -> dict[str, Any]:
    """What the figures were taken on."""

    def version(mod: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:
            return "?"

    cpu = "?"
    with_lscpu = shutil.which("lscpu")
    if with_lscpu:
        for line in subprocess.run(
            [with_lscpu], capture_output=True, text=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for mod in ("anywire", "uvicorn", "websockets", "uvloop", "python-socketio", "python-engineio"):
        info[mod] = version(mod)
    if node_modules is not None:
        info["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip()
        pkg = json.loads((node_modules / "socket.io" / "package.json").read_text())
        info["socket.io (node)"] = pkg["version"]
    return info


def point(
    label: str,
    tgt: Target,
    workload: str,
    clients: int,
    args: argparse.Namespace,
    rate: float = 0.0,
) -> dict[str, Any]:
    load = f", {rate:g} events/s" if rate else ""
    print(
        f"== {label}: {tgt.name}, {workload}, {clients} clients{load}", file=sys.stderr, flush=True
    )
    try:
        r = run(
            tgt, workload, clients, secs=args.duration, size=args.size, burst=args.burst, rate=rate
        )
    except Exception as exc:  # one broken peer must not lose the whole comparison
        print(f"   failed: {exc}", file=sys.stderr)
        return {
            "key": label,
            "target": tgt.name,
            "workload": workload,
            "clients": clients,
            "offered": rate or None,
            "failed": str(exc),
        }
    r["key"] = label
    print(
        f"   {r['rate']:,.0f}/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
        f"errors {r['errors']} {r['kb_per_conn']:.1f} KB/conn server CPU {r['server_cpu']} "
        f"generator CPU {r['gen_cpu']:.2f}",
        file=sys.stderr,
        flush=True,
    )
    return r


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--sweep", default="100,300,1000,2000", help="fan-out client counts")
    parser.add_argument(
        "--rates", default="10,50,100", help="open loop: events/s published to the room"
    )
    parser.add_argument("--open-clients", type=int, default=1000, help="open loop: clients")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset of " + ", ".join(SECTIONS) + " (a subset is printed, "
        "saved under bench/results/ and plotted, never written to the doc)",
    )
    parser.add_argument("--echo-clients", type=int, default=100)
    parser.add_argument(
        "--echo-rounds",
        type=int,
        default=5,
        help="echo runs per server, interleaved; the run with the median p99 is reported",
    )
    parser.add_argument("--idle-clients", type=int, default=2000)
    parser.add_argument(
        "--max-conns", type=int, default=0, help="0: as many as the file limit allows"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated target names (aw-ws, sio-ws, ...)"
    )
    parser.add_argument("--node-modules", default="/work/bench-peers")
    parser.add_argument("--redis", default=None, help="redis://... for the two-node fan-out")
    parser.add_argument("--quick", action="store_true", help="2 s points, sweep 100,1000")
    parser.add_argument(
        "--write-doc", action="store_true", help="update docs/benchmarks.md and the plot"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.sweep, args.echo_rounds = 2.0, "100,1000", 1
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = [x for x in sections if x not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    partial = set(sections) != set(SECTIONS)
    if partial and args.write_doc:
        parser.error("--write-doc needs every section (the doc shows a whole run)")
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    if not rates or any(not r > 0 for r in rates):
        parser.error("--rates: positive events per second, comma-separated")
    hard = raise_nofile()
    node_modules = find_node_modules(args.node_modules)
    all_targets = targets(node_modules)
    if args.only:
        all_targets = {k: v for k, v in all_targets.items() if k in args.only.split(",")}
    info = machine(node_modules)
    sweep = [int(x) for x in args.sweep.split(",")]
    results: dict[str, Any] = {
        "machine": info,
        "args": vars(args),
        "fanout": [],
        "echo": [],
        "idle": [],
        "open": [],
    }

    for clients in sweep if "fanout" in sections else []:
        for key, tgt in all_targets.items():
            results["fanout"].append(point(key, tgt, "fanout", clients, args))
    # One event per tick instead of a burst: less to coalesce, so latency over throughput.
    results["fanout_burst1"] = []
    single = argparse.Namespace(**{**vars(args), "burst": 1})
    for key in ("aw-ws", "raw-ws", "sio-ws", "node-ws") if "burst1" in sections else ():
        if key in all_targets:
            results["fanout_burst1"].append(point(key, all_targets[key], "fanout", 1000, single))
    # Open loop: a fixed offered load, whatever each server manages; latency is what moves.
    for rate in rates if "open" in sections else []:
        for key in OPEN_KEYS:
            if key in all_targets:
                tgt = all_targets[key]
                results["open"].append(point(key, tgt, "open", args.open_clients, args, rate))
    # Closed-loop p99 swings between runs on a shared machine: several rounds, interleaved
    # so a slow spell hits every server, and each server's median run is reported.
    rounds: dict[str, list[dict[str, Any]]] = {}
    for _ in range(max(1, args.echo_rounds) if "echo" in sections else 0):
        for key in ("aw-ws", "sio-ws", "raw-ws", "node-ws"):
            if key in all_targets:
                r = point(key, all_targets[key], "echo", args.echo_clients, args)
                rounds.setdefault(key, []).append(r)
    results["echo_rounds"] = rounds
    results["echo"] = [_median_run(runs) for runs in rounds.values()]
    for key, tgt in all_targets.items() if "idle" in sections else ():
        results["idle"].append(point(key, tgt, "idle", args.idle_clients, args))
    if "aw-ws" in all_targets and "maxconns" in sections:
        n = args.max_conns or max(1000, hard - 1000)
        results["max_conns"] = point("aw-ws", all_targets["aw-ws"], "idle", n, args)
    if args.redis and "aw-ws" in all_targets and "redis" in sections:
        two = anywire_target(["websocket"], args.redis, nodes=2)
        one = anywire_target(["websocket"], args.redis, nodes=1)
        results["redis"] = [
            point("aw-ws-redis-1", one, "fanout", 1000, args),
            point("aw-ws-redis-2", two, "fanout", 1000, args),
        ]
    if "bandwidth" in sections:
        # Last: its clients are Python ones in this process, with a counting proxy.
        clients, events = (20, 100) if args.quick else (50, 300)
        results["bandwidth"] = bandwidth.run_all(clients, events, 20.0)
    results["sections"] = sections
    if partial:
        # A subset: its own files, so the full run's results and plots stay as they were.
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        saved = RESULTS.with_name(f"sections-{stamp}.json")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1))
        print(render_sections(results))
        if results["open"]:
            plot_latency(results, saved.with_suffix(".latency.png"))
        print(f"saved {saved}", file=sys.stderr)
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    text = render(results)
    bw_text = bandwidth.render(results["bandwidth"])
    print(text + "\n\n" + bw_text)
    plot(results, PLOT)
    plot_latency(results, LATENCY_PLOT)
    if args.write_doc:
        doc = DOC.read_text()
        for start, end, block in ((START, END, text), (BW_START, BW_END, bw_text)):
            head, rest = doc.split(start, 1)
            _, tail = rest.split(end, 1)
            doc = head + start + "\n" + block + "\n" + end + tail
        DOC.write_text(doc)
        print(f"updated {DOC} and {PLOT}", file=sys.stderr)


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose p99 is the median of ``runs`` (failed runs count as worst)."""
    ok = sorted((r for r in runs if not r.get("failed")), key=lambda r: r["p99_ms"])
    if not ok:
        return runs[0]
    return ok[(len(ok) - 1) // 2] if len(ok) == len(runs) else ok[len(ok) // 2]


# -- report ------------------------------------------------------------------------------
def _find(
    rows: list[dict[str, Any]], key: str, clients: int | None = None
) -> dict[str, Any] | None:
    for r in rows:
        if r.get("key") == key and (clients is None or r["clients"] == clients):
            return r
    return None


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def _rate(r: dict[str, Any] | None) -> float | None:
    return None if r is None or r.get("failed") else float(r["rate"])


def _per_cpu(r: dict[str, Any] | None) -> float | None:
    if r is None or r.get("failed") or not sum(r["server_cpu"]):
        return None
    return float(r["rate"]) / sum(r["server_cpu"])


def _rows(
    results: list[dict[str, Any]], width: int, cells: Callable[[dict[str, Any]], list[str]]
) -> list[str]:
    """One markdown table row per result: its target, then ``cells(r)`` (``width`` of
    them), or "failed" and empty cells for a point that did not run."""
    out = []
    for r in results:
        row = ["failed"] + [""] * (width - 1) if r.get("failed") else cells(r)
        out.append(f"| {r['target']} | " + " | ".join(row) + " |")
    return out


def _render_burst1(single: list[dict[str, Any]]) -> list[str]:
    if not single:
        return []
    out = ["### Fan-out, one event per loop tick (1,000 clients)", "",
           "The same fan-out with `--burst 1`: less to coalesce per write, lower latency.",
           "", "| server | deliveries/s | p50 ms | p99 ms | server CPU |",
           "|---|---|---|---|---|"]  # fmt: skip
    out += _rows(single, 4, lambda r: [
        f"{r['rate']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
        f"{r['server_cpu'][0] * 100:.0f}%",
    ])  # fmt: skip
    return [*out, ""]


def _render_open(rows: list[dict[str, Any]]) -> list[str]:
    """The open-loop table (p50 / p99 per offered load), the issue #17 latency targets
    and where each transport stands against a sub-10 ms p99."""
    if not rows:
        return []
    rates = sorted({float(r["offered"]) for r in rows})
    keys = list(dict.fromkeys(r["key"] for r in rows))
    label = {r["key"]: r["target"] for r in rows}
    clients = rows[0]["clients"]

    def find(key: str, rate: float) -> dict[str, Any] | None:
        for r in rows:
            if r["key"] == key and float(r["offered"]) == rate:
                return r
        return None

    out = [f"### Latency at a fixed offered load (open loop, {clients:,} clients)", "",
           "The server publishes to the room on a fixed schedule (events/s; each event goes "
           "to every client), whatever it manages to deliver; latency counts from the time "
           "each event was due. Cells: p50 / p99 ms (deliveries/s).", "",
           "| server | " + " | ".join(f"{x:g} events/s" for x in rates) + " |",
           "|---|" + "---|" * len(rates)]  # fmt: skip
    for key in keys:
        cells = []
        for x in rates:
            r = find(key, x)
            if r is None or r.get("failed"):
                cells.append("failed" if r else "")
            else:
                err = f", {r['errors']} errors" if r["errors"] else ""
                cells.append(f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ({r['rate']:,.0f}{err})")
        out.append(f"| {label[key]} | " + " | ".join(cells) + " |")

    def p99(key: str, rate: float) -> float | None:
        r = find(key, rate)
        return None if r is None or r.get("failed") else float(r["p99_ms"])

    out += ["", "| offered load | WebSocket p99 vs Node socket.io (target <= 1x) "
            "| vs raw loop (target <= 2x) | p99 under 10 ms |", "|---|---|---|---|"]  # fmt: skip
    for x in rates:
        aw = p99("aw-ws", x)
        under = [
            name for key, name in (("aw-ws", "WebSocket"), ("aw-sse", "SSE"),
                                   ("aw-poll", "long-poll"))
            if (v := p99(key, x)) is not None and v < 10
        ]  # fmt: skip
        out.append(
            f"| {x:g} events/s | {_ratio(aw, p99('node-ws', x))} | {_ratio(aw, p99('raw-ws', x))} "
            f"| {', '.join(under) or 'none'} |"
        )
    return [*out, ""]


def render_sections(res: dict[str, Any]) -> str:
    """A run of some sections only: the open-loop and one-event-per-tick tables as in the
    doc, every other point as one row."""
    out = [f"Sections {', '.join(res['sections'])}, {res['machine']['date']}, load average "
           f"before: {', '.join(f'{x:.2f}' for x in res['machine']['load_before'])}; "
           f"{res['args']['duration']:.0f} s per point.", ""]  # fmt: skip
    out += _render_burst1(res.get("fanout_burst1") or [])
    out += _render_open(res.get("open") or [])
    if res.get("bandwidth"):
        out += ["### Bandwidth per delivery", "", bandwidth.render(res["bandwidth"]), ""]
    others = [r for name in ("fanout", "echo", "idle", "redis") for r in res.get(name) or []]
    if others:
        out += ["| server | workload | clients | per s | p50 ms | p99 ms | KB/conn | server CPU |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        out += _rows(others, 7, lambda r: [
            r["workload"], str(r["clients"]), f"{r['rate']:,.0f}", f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}", f"{r['kb_per_conn']:.1f}",
            f"{r['server_cpu'][0] * 100:.0f}%",
        ])  # fmt: skip
    return "\n".join(out)


def render(res: dict[str, Any]) -> str:
    """The markdown tables (what --write-doc puts into docs/benchmarks.md)."""
    m = res["machine"]
    out = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"Python {m['python']}; uvicorn {m['uvicorn']}, websockets {m['websockets']}, "
        f"uvloop {m['uvloop']}, python-socketio {m['python-socketio']}, python-engineio "
        f"{m['python-engineio']}"
        + (f", Node {m['node']} with socket.io {m['socket.io (node)']}" if "node" in m else "")
        + f". Load average before the run: {', '.join(f'{x:.2f}' for x in m['load_before'])}. "
        f"{res['args']['duration']:.0f} s per point, ~{res['args']['size']}-byte application "
        f"payload.",
        "",
    ]
    fan = res["fanout"]
    sweep = sorted({r["clients"] for r in fan})
    names = list(dict.fromkeys(r["key"] for r in fan))
    label = {r["key"]: r["target"] for r in fan}
    out += ["### Fan-out to one room: deliveries/s (p50 / p99 latency, ms)", ""]
    out.append(
        "| server | "
        + " | ".join(f"{c} clients" for c in sweep)
        + " | server CPU | generator CPU |"
    )
    out.append("|---|" + "---|" * (len(sweep) + 2))
    for key in names:
        cells = []
        for c in sweep:
            r = _find(fan, key, c)
            if r is None or r.get("failed"):
                cells.append("failed" if r else "")
            else:
                err = f", {r['errors']} errors" if r["errors"] else ""
                cells.append(f"{r['rate']:,.0f} ({r['p50_ms']:.1f} / {r['p99_ms']:.1f}{err})")
        big = _find(fan, key, max(sweep))
        cpu = f"{big['server_cpu'][0] * 100:.0f}%" if big and not big.get("failed") else ""
        gen = f"{big['gen_cpu'] * 100:.0f}%" if big and not big.get("failed") else ""
        out.append(f"| {label[key]} | " + " | ".join(cells) + f" | {cpu} | {gen} |")
    out += [
        "",
        "(CPU columns: at the largest client count; the generator's share of one core.)",
        "",
        "### Fan-out per server CPU-second (deliveries/s divided by the server's CPU share)",
        "",
        "On a shared machine a server may get less than its core; this normalizes that.",
        "",
        "| server | " + " | ".join(f"{c} clients" for c in sweep) + " |",
        "|---|" + "---|" * len(sweep),
    ]
    for key in names:
        per = [_per_cpu(_find(fan, key, c)) for c in sweep]
        out.append(f"| {label[key]} | " + " | ".join(f"{p:,.0f}" if p else "" for p in per) + " |")
    out.append("")

    out += _render_burst1(res.get("fanout_burst1") or [])
    out += _render_open(res.get("open") or [])
    echo = res["echo"]
    out += ["### Echo: sequential emit-with-ack, "
            f"{echo[0]['clients'] if echo else '?'} clients", "",
            "| server | round trips/s | p50 ms | p90 ms | p99 ms | max ms | errors |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    out += _rows(echo, 6, lambda r: [
        f"{r['rate']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}",
        f"{r['max_ms']:.2f}", str(r["errors"]),
    ])  # fmt: skip
    rounds = res.get("echo_rounds") or {}
    if any(len(runs) > 1 for runs in rounds.values()):
        names = {r["key"]: r["target"] for r in echo if "key" in r}
        out += ["", f"Each server ran {max(len(v) for v in rounds.values())} times, "
                "interleaved; the table shows its run with the median p99. p99 of every run:",
                ""]  # fmt: skip
        for key, runs in rounds.items():
            p99s = ", ".join(
                "failed" if r.get("failed") else f"{r['p99_ms']:.2f}" for r in runs
            )
            out.append(f"* {names.get(key, key)}: {p99s} ms")
    idle = res["idle"]
    out += ["", f"### Idle connections: {idle[0]['clients'] if idle else '?'} per server", "",
            "| server | RSS empty MB | RSS connected MB | KB per connection "
            "| time to set all up, s | errors |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    out += _rows(idle, 5, lambda r: [
        f"{r['server_rss_base_kb'] / 1024:.1f}", f"{r['server_rss_ready_kb'] / 1024:.1f}",
        f"{r['kb_per_conn']:.1f}", f"{r['connect_secs']:.2f}", str(r["errors"]),
    ])  # fmt: skip
    mc = res.get("max_conns")
    if mc and not mc.get("failed"):
        out += ["", "### Most idle WebSocket connections on one node", "",
                f"anywire held {mc['ready']:,} of {mc['clients']:,} attempted idle WebSocket "
                f"connections (the file limit of generator and server is the cap here), "
                f"set up in "
                f"{mc['connect_secs']:.1f} s; server RSS {mc['server_rss_ready_kb'] / 1024:.0f} MB "
                f"({mc['kb_per_conn']:.1f} KB per connection), {mc['errors']} errors."]  # fmt: skip
    out += ["", "### Cross-node fan-out through Redis", ""]
    redis = res.get("redis")
    if redis and all(not r.get("failed") for r in redis):
        memory = _rate(_find(fan, "aw-ws", 1000))
        shown = f"{memory:,.0f}/s" if memory else "not measured"
        out.append(
            f"1,000 WebSocket clients: one node on the in-memory broker {shown}; "
            f"through Redis, one node {redis[0]['rate']:,.0f}/s, two nodes "
            f"{redis[1]['rate']:,.0f}/s (two nodes via Redis vs one in-memory node: "
            f"{_ratio(redis[1]['rate'], memory)}; vs one node via Redis: "
            f"{_ratio(redis[1]['rate'], redis[0]['rate'])}). Through Redis a burst is "
            f"published concurrently (as many handlers would); every publish is one Lua "
            f"script and one message per node on the bus."
        )
    else:
        out.append("Pending: needs the Redis broker (run with `--redis redis://127.0.0.1:6379`).")

    # Targets of issue #5, computed from this run.
    big = 1000 if 1000 in sweep else max(sweep)
    aw_ws, aw_sse, aw_poll = (_rate(_find(fan, k, big)) for k in ("aw-ws", "aw-sse", "aw-poll"))
    raw, sio_ws, sio_poll, node_ws = (
        _rate(_find(fan, k, big)) for k in ("raw-ws", "sio-ws", "sio-poll", "node-ws")
    )
    e_aw, e_sio = _find(echo, "aw-ws"), _find(echo, "sio-ws")
    i_aw, i_raw, i_sse = _find(idle, "aw-ws"), _find(idle, "raw-ws"), _find(idle, "aw-sse")
    c = {k: _per_cpu(_find(fan, k, big)) for k in ("aw-ws", "aw-sse", "aw-poll")}
    c |= {k: _per_cpu(_find(fan, k, big)) for k in ("raw-ws", "sio-ws", "sio-poll", "node-ws")}
    echo_ok = e_aw and e_sio and not e_aw.get("failed") and not e_sio.get("failed")
    idle_ok = i_aw and i_raw and not i_aw.get("failed") and not i_raw.get("failed")
    sse_idle_ok = idle_ok and i_sse and not i_sse.get("failed")
    redis_ok = redis and all(not r.get("failed") for r in redis)
    rows = [
        ("WebSocket fan-out vs raw ASGI loop", ">= 0.8x", _ratio(aw_ws, raw),
         _ratio(c["aw-ws"], c["raw-ws"])),
        ("WebSocket fan-out vs python-socketio", ">= 5x", _ratio(aw_ws, sio_ws),
         _ratio(c["aw-ws"], c["sio-ws"])),
        ("WebSocket fan-out vs Node socket.io (goal)", "~1x", _ratio(aw_ws, node_ws),
         _ratio(c["aw-ws"], c["node-ws"])),
        ("SSE fan-out vs anywire WebSocket", ">= 0.7x", _ratio(aw_sse, aw_ws),
         _ratio(c["aw-sse"], c["aw-ws"])),
        ("long-poll fan-out vs python-socketio polling", ">= 5x", _ratio(aw_poll, sio_poll),
         _ratio(c["aw-poll"], c["sio-poll"])),
        ("echo p99 vs python-socketio", "<= 0.5x",
         _ratio(e_aw["p99_ms"], e_sio["p99_ms"]) if echo_ok else "n/a", ""),
        ("idle KB per WebSocket vs raw ASGI", "<= 1.0x",
         _ratio(i_aw["kb_per_conn"], i_raw["kb_per_conn"]) if idle_ok else "n/a", ""),
        ("idle KB per SSE stream vs anywire WebSocket", "<= 1.5x",
         _ratio(i_sse["kb_per_conn"], i_aw["kb_per_conn"]) if sse_idle_ok else "n/a", ""),
        ("two-node fan-out via Redis vs one in-memory node", ">= 0.6x",
         _ratio(redis[1]["rate"], aw_ws) if redis_ok else "pending", ""),
    ]  # fmt: skip
    out += ["", f"### Ratios against the targets ({big} clients for fan-out)", "",
            "| ratio | target | measured | per server CPU-second |",
            "|---|---|---|---|"]  # fmt: skip
    out += [f"| {a} | {b} | {m} | {n} |" for a, b, m, n in rows]
    return "\n".join(out)


def plot(res: dict[str, Any], path: Path) -> None:
    """Throughput against the number of clients, one line per server and transport."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    fan = [r for r in res["fanout"] if not r.get("failed")]
    for key in dict.fromkeys(r["key"] for r in fan):
        rows = sorted((r for r in fan if r["key"] == key), key=lambda r: r["clients"])
        style = "-" if key.startswith("aw") else "--"
        ax.plot(
            [r["clients"] for r in rows],
            [r["rate"] for r in rows],
            style,
            marker="o",
            label=rows[0]["target"],
        )
    ax.set_xscale("log")
    ax.set_xlabel("clients in one room")
    ax.set_ylabel("deliveries per second")
    ax.set_title("Fan-out throughput, server pinned to one core")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(res: dict[str, Any], path: Path) -> None:
    """Open loop: p50 (dashed) and p99 (solid) latency against the offered load, one
    colour per server."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    rows = [r for r in res.get("open") or [] if not r.get("failed")]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, key in enumerate(dict.fromkeys(r["key"] for r in rows)):
        mine = sorted((r for r in rows if r["key"] == key), key=lambda r: r["offered"])
        x = [r["offered"] for r in mine]
        colour = f"C{i}"
        ax.plot(x, [r["p99_ms"] for r in mine], "-", marker="o", color=colour,
                label=f"{mine[0]['target']} p99")  # fmt: skip
        ax.plot(x, [r["p50_ms"] for r in mine], "--", marker=".", color=colour,
                label=f"{mine[0]['target']} p50")  # fmt: skip
    ax.axhline(10, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    rates = sorted({r["offered"] for r in rows})
    ax.set_xticks(rates, [f"{x:g}" for x in rates])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"offered load, events/s to {rows[0]['clients']:,} clients in one room")
    ax.set_ylabel("delivery latency, ms")
    ax.set_title("Open-loop fan-out latency, server pinned to one core")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, framealpha=0.8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
