"""Instructions per fan-out delivery of a real server, counted by callgrind: what the
clients' receipt cadence costs the node, free of the wall-clock noise of a shared machine.

The bench app runs under valgrind's callgrind (counting off until the load runs); the C
load generator holds ``--clients`` WebSocket clients in the bench room, the app publishes
one event per tick (``--burst``) and the clients acknowledge by ``--rx-every``: absent,
the rule the server advertises (docs/protocol.md 6.4); N, after exactly N frames; 0,
never. The figure is server user-space instructions per delivery (the kernel's share of
reads and writes is not in it).

    python3 bench/fanout_instructions.py                    # advertised rule
    python3 bench/fanout_instructions.py --rx-every 16      # the old fixed count
    python3 bench/fanout_instructions.py --tree /tmp/main --keep /tmp/main.cg  # another
        # checkout, its profile kept for callgrind_annotate

Under callgrind the server runs about 30 times slower: the figure is per delivery, so
that does not matter much, but the time rule (0.5-1 s) fires more often per event than
at full speed; compare runs of the same length and client count.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anywire.bench.generator import Generator  # noqa: E402
from bench import callgrind  # noqa: E402
from bench.server_instructions import counted  # noqa: E402


def measure(
    clients: int,
    secs: float,
    burst: int,
    rx_every: int | None,
    tree: Path = REPO,
    keep: str | None = None,
    kind: str = "ws",
) -> dict[str, float]:
    """Deliveries, receipts and server instructions of one run."""

    def load(port: int) -> Generator:
        return Generator(port, "anywire", "fanout", {kind: clients}, 100, None,
                         rx_every=rx_every)  # fmt: skip

    def publish(port: int) -> None:
        query = f"?secs={secs + 30}&size=100&burst={burst}"
        start = urllib.request.Request(
            f"http://127.0.0.1:{port}/ctl/start{query}", method="POST", data=b""
        )
        with urllib.request.urlopen(start, timeout=30) as r:
            r.read()

    result, instructions = counted(["-m", "anywire.bench.app"], tree, secs, load, publish, keep)
    return {
        "deliveries": result["deliveries"],
        "rx_sent": result.get("rx_sent", 0),
        "instructions": instructions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--secs", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument("--rx-every", type=int, default=None)
    parser.add_argument("--tree", default=str(REPO), help="the anywire checkout to run")
    parser.add_argument("--keep", help="copy callgrind's profile here (callgrind_annotate)")
    parser.add_argument(
        "--kind", choices=("ws", "sse"), default="ws", help="the clients' transport"
    )
    args = parser.parse_args()
    callgrind.check_installed()
    tree = Path(args.tree).resolve()
    r = measure(args.clients, args.secs, args.burst, args.rx_every, tree, args.keep, args.kind)
    rule = "advertised" if args.rx_every is None else f"every {args.rx_every}"
    per_rx = r["deliveries"] / r["rx_sent"] if r["rx_sent"] else float("inf")
    print(
        f"rx {rule}: {r['instructions'] / r['deliveries']:,.0f} instructions per delivery "
        f"({r['deliveries']:,} deliveries, one rx per {per_rx:.1f}, {args.clients} {args.kind} "
        "clients, "
        "server user space)"
    )


if __name__ == "__main__":
    main()
