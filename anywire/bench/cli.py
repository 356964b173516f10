"""``anywire bench``: load an anywire server and print throughput, latency and memory.

It starts a fresh anywire bench server (pinned to CPU 0 with taskset when available) and
the C load generator (pinned to CPU 1), sets every client up, measures for ``--duration``
seconds while printing progress to stderr, then prints one result (a table, or JSON with
``--json``). With ``--url`` it starts no server and loads the one running there (no RSS or
CPU figures then; ``idle`` works against any anywire server, ``echo`` needs an ``echo``
handler answering with its data and ``fanout``/``open`` the bench app, ``python -m
anywire.bench.app``). ``open`` publishes ``--rate`` events per second on a fixed schedule
(open loop) and reports the latency at that offered load. Examples::

    anywire bench --clients 1000 --workload fanout
    anywire bench --clients 300 --transports websocket,sse,longpoll --duration 5
    anywire bench --clients 1000 --workload open --rate 50
    anywire bench --clients 100 --workload echo --json
    anywire bench --clients 2000 --workload idle
    anywire bench --url http://10.0.0.7:8000 --token "$JWT" --clients 200 --workload idle
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..clihelp import HelpFormatter, plain
from .runner import KINDS, anywire_target, external, run, run_external

__all__ = ["format_result", "main"]

WORKLOADS = ("fanout", "open", "echo", "idle")
# Against a server someone else runs (--url): a mistyped count must not flood it.
MAX_URL_CLIENTS = 10_000
MAX_URL_SECS = 600.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anywire bench", description=plain(__doc__), formatter_class=HelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100, help="connections")
    parser.add_argument(
        "--transports",
        default="websocket",
        help="comma-separated mix, clients spread evenly: websocket,sse,longpoll",
    )
    parser.add_argument("--workload", choices=WORKLOADS, default="fanout", help="what to measure")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--size", type=int, default=100, help="approximate message bytes")
    parser.add_argument(
        "--burst", type=int, default=10, help="fan-out: events published per event-loop tick"
    )
    parser.add_argument(
        "--rx-every",
        type=int,
        default=None,
        help="anywire clients send rx after exactly this many frames (default: by the rule "
        "the server advertises at negotiate, protocol 6.4; 16 was the fixed rule before it; "
        "0: never, to measure what receipts cost)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="open: events per second published to the room (each to every client)",
    )
    parser.add_argument("--redis", default=None, help="redis://... : use the Redis broker")
    parser.add_argument("--nodes", type=int, default=1, help="server nodes (needs --redis)")
    parser.add_argument(
        "--url",
        default=None,
        help="load the server running at http://host[:port] instead of starting one "
        f"(at most {MAX_URL_CLIENTS} clients and {MAX_URL_SECS:.0f} s)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="with --url: the bearer token every client negotiates with",
    )
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
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if not args.rate > 0:  # (also refuses nan)
        parser.error("--rate must be positive (events per second)")

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    if args.url is not None:
        return _main_url(parser, args, transports, progress)
    if args.token is not None:
        parser.error("--token goes with --url (the bench server started here is anonymous)")
    target = anywire_target(transports, args.redis, args.nodes)
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
        rate=args.rate,
        rx_every=args.rx_every,
    )
    return _report(result, args)


def _report(result: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_result(result))
    return 0 if result["errors"] == 0 and result["ready"] == args.clients else 1


def _main_url(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    transports: list[str],
    progress: Any,
) -> int:
    """``--url``: load a server that runs elsewhere (bounded counts, nothing started)."""
    if args.redis or args.nodes != 1:
        parser.error("--redis and --nodes start servers; with --url the server is already running")
    if args.clients > MAX_URL_CLIENTS or args.duration > MAX_URL_SECS:
        parser.error(f"with --url: at most {MAX_URL_CLIENTS} clients and {MAX_URL_SECS:.0f} s")
    try:
        target = external(args.url, args.token)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        result = run_external(
            target,
            args.workload,
            transports,
            args.clients,
            secs=args.duration,
            size=args.size,
            burst=args.burst,
            progress=progress,
            gen_cpu=None if args.no_pin else 1,
            rate=args.rate,
        )
    except RuntimeError as exc:
        print(f"anywire bench: {exc}", file=sys.stderr)
        return 1
    return _report(result, args)


def format_result(r: dict[str, Any]) -> str:
    """A human-readable summary of one run."""
    unit = "round trips/s" if r["workload"] == "echo" else "deliveries/s"
    lines = [
        f"{r['target']}  workload={r['workload']}  clients={r['ready']}/{r['clients']}  "
        f"size~{r['size']}B  {r['secs']:.1f}s",
        f"  {unit:<16} {r['rate']:>12,.0f}"
        + (f"  (offered {r['offered'] * r['clients']:,.0f})" if r.get("offered") else ""),
        f"  latency ms       p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  "
        f"p99 {r['p99_ms']:.2f}  max {r['max_ms']:.2f}",
        f"  errors           {r['errors']}"
        + (f"  ({r['first_error']})" if r["first_error"] else ""),
        f"  setup            {r['connect_secs']:.2f}s for {r['clients']} connections",
        *_server_lines(r),
        f"  generator CPU    {r['gen_cpu'] * 100:.0f}% of one core",
    ]
    if r.get("rx_sent") and r["deliveries"]:
        lines.append(f"  receipts         {r['rx_sent']:,} rx sent, one per "
                     f"{r['deliveries'] / r['rx_sent']:.1f} deliveries")  # fmt: skip
    if r["gen_cpu"] > 0.9:
        lines.append("  warning: the load generator was near a full core; the server may not be")
        lines.append("           the limit of these figures")
    return "\n".join(lines)


def _server_lines(r: dict[str, Any]) -> list[str]:
    if r["server_rss_base_kb"] is None:  # --url: the server is not a process of ours
        return ["  server RSS, CPU  not measured (a server started elsewhere)"]
    return [
        f"  server RSS       {r['server_rss_base_kb'] / 1024:.1f} MB empty, "
        f"{r['server_rss_ready_kb'] / 1024:.1f} MB connected ({r['kb_per_conn']:.1f} KB/conn), "
        f"{r['server_rss_end_kb'] / 1024:.1f} MB at end",
        "  server CPU       " + ", ".join(f"{c * 100:.0f}%" for c in r["server_cpu"]),
    ]


if __name__ == "__main__":
    sys.exit(main())
