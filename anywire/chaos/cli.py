"""``anywire chaos``: a soak run anyone can repeat (needs redis-server and nginx).

::

    anywire chaos --clients 300 --duration 600          # 10 minutes, a SIGKILL every 15 s
    anywire chaos --clients 90 --schedule ci            # the CI scenario, about 2 minutes

Prints, per transport: received/expected, unexplained gaps, duplicates, ``$lost``
ranges, reconnect time p50/p99 after faults; then node RSS, Redis memory, graceful stop
times, and the verdict (exit code 1 if any invariant broke).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from ..clihelp import HelpFormatter, plain
from .fleet import TRANSPORTS
from .run import RunConfig, run

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``anywire chaos``."""
    parser = argparse.ArgumentParser(
        prog="anywire chaos",
        description=plain(__doc__),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=300, help="clients")
    parser.add_argument("--nodes", type=int, default=3, help="anywire nodes")
    parser.add_argument("--rooms", type=int, default=10, help="rooms")
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds of publishing")  # fmt: skip
    parser.add_argument("--rate", type=float, default=60.0, help="events per second")
    parser.add_argument("--call-rate", type=float, default=2.0, help="server calls per second")
    parser.add_argument("--schedule", choices=("soak", "ci", "none"), default="soak",
                        help="faults: soak (a SIGKILL every 15 s...), ci, none")  # fmt: skip
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="comma-separated transports")  # fmt: skip
    parser.add_argument("--log-dir", type=Path, default=None, help="where node logs go")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.nodes < 2 or args.duration <= 0 or args.rate <= 0:
        parser.error("need clients >= 1, nodes >= 2, duration > 0 and rate > 0")
    transports = tuple(t for t in args.transports.split(",") if t)
    if not transports or any(t not in TRANSPORTS for t in transports):
        parser.error(f"transports must be among {', '.join(TRANSPORTS)}")
    logging.basicConfig(level=logging.ERROR)
    config = RunConfig(
        clients=args.clients,
        nodes=args.nodes,
        rooms=args.rooms,
        duration=args.duration,
        rate=args.rate,
        call_rate=args.call_rate,
        schedule=args.schedule,
        transports=transports,
        log_dir=args.log_dir,
    )
    print(f"anywire chaos: {args.clients} clients, {args.nodes} nodes, {args.rooms} rooms, "
          f"{args.duration:.0f} s at {args.rate:.0f} events/s, faults: {args.schedule}",
          flush=True)  # fmt: skip
    result = asyncio.run(run(config))
    print(result.report(), flush=True)
    return 0 if result.ok else 1
