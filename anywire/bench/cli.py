"""``anywire bench``: load an anywire server and print throughput, latency and memory.

It starts a fresh anywire bench server (pinned to CPU 0 with taskset when available) and
the C load generator (pinned to CPU 1), sets every client up, measures for ``--duration``
seconds while printing progress to stderr, then prints one result (a table, or JSON with
``--json``). Examples::

    anywire bench --clients 1000 --workload fanout
    anywire bench --clients 300 --transports websocket,sse,longpoll --duration 5
    anywire bench --clients 100 --workload echo --json
    anywire bench --clients 2000 --workload idle
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .runner import KINDS, anywire_target, run

__all__ = ["format_result", "main"]

WORKLOADS = ("fanout", "echo", "idle")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anywire bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=100, help="connections (default 100)")
    parser.add_argument(
        "--transports",
        default="websocket",
        help="comma-separated mix, clients spread evenly: websocket,sse,longpoll",
    )
    parser.add_argument("--workload", choices=WORKLOADS, default="fanout")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--size", type=int, default=100, help="approximate message bytes")
    parser.add_argument(
        "--burst", type=int, default=10, help="fan-out: events published per event-loop tick"
    )
    parser.add_argument("--redis", default=None, help="redis://... : use the Redis broker")
    parser.add_argument("--nodes", type=int, default=1, help="server nodes (needs --redis)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``anywire bench``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    unknown = [t for t in transports if t not in KINDS]
    if unknown or not transports:
        parser.error(f"unknown transport(s) {unknown}; choose from websocket, sse, longpoll")
    if args.workload == "echo" and transports != ["websocket"]:
        parser.error("the echo workload runs over websocket only")
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    if args.nodes > 1 and not args.redis:
        parser.error("--nodes > 1 needs --redis URL")
    target = anywire_target(transports, args.redis, args.nodes)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    result = run(
        target,
        args.workload,
        args.clients,
        secs=args.duration,
        size=args.size,
        burst=args.burst,
        progress=progress,
        server_cpu=None if args.no_pin else 0,
        gen_cpu=None if args.no_pin else 1,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_result(result))
    return 0 if result["errors"] == 0 and result["ready"] == args.clients else 1


def format_result(r: dict[str, Any]) -> str:
    """A human-readable summary of one run."""
    unit = "round trips/s" if r["workload"] == "echo" else "deliveries/s"
    lines = [
        f"{r['target']}  workload={r['workload']}  clients={r['ready']}/{r['clients']}  "
        f"size~{r['size']}B  {r['secs']:.1f}s",
        f"  {unit:<16} {r['rate']:>12,.0f}",
        f"  latency ms       p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  "
        f"p99 {r['p99_ms']:.2f}  max {r['max_ms']:.2f}",
        f"  errors           {r['errors']}"
        + (f"  ({r['first_error']})" if r["first_error"] else ""),
        f"  setup            {r['connect_secs']:.2f}s for {r['clients']} connections",
        f"  server RSS       {r['server_rss_base_kb'] / 1024:.1f} MB empty, "
        f"{r['server_rss_ready_kb'] / 1024:.1f} MB connected ({r['kb_per_conn']:.1f} KB/conn), "
        f"{r['server_rss_end_kb'] / 1024:.1f} MB at end",
        "  server CPU       " + ", ".join(f"{c * 100:.0f}%" for c in r["server_cpu"]),
        f"  generator CPU    {r['gen_cpu'] * 100:.0f}% of one core",
    ]
    if r["gen_cpu"] > 0.9:
        lines.append("  warning: the load generator was near a full core; the server may not be")
        lines.append("           the limit of these figures")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
