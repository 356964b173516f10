"""Instructions per echo round trip of a real server: uvicorn, the app, everything in the
server process's user space, counted by valgrind's callgrind while the C load generator
runs the echo workload against it over real sockets.

Wall-clock round trips per second swing by 10% and more between runs on a shared
machine, which hides the hot-path changes of a few percent that add up; instruction
counts repeat within about 1%. Callgrind starts with counting off and counts only while
the load runs, so start-up and shutdown are left out. It counts user space only: what
the kernel does for a write or a wake-up is not in these figures (compare wall clock
for that, with bench/compare.py).

    python3 bench/server_instructions.py                   # anywire, 100 clients
    python3 bench/server_instructions.py --server raw      # the bare ASGI echo
    python3 bench/server_instructions.py --server sio      # python-socketio
    python3 bench/server_instructions.py --tree ../other   # another checkout of anywire

Under callgrind the server runs about 30 times slower; the figure is per round trip, so
that does not matter, except that timers (heartbeat sweeps) weigh a little more.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anywire.bench.generator import Generator  # noqa: E402
from anywire.bench.runner import free_port  # noqa: E402
from bench import callgrind  # noqa: E402

SERVERS = {
    # name: (command after the interpreter, generator dialect)
    "anywire": (["-m", "anywire.bench.app"], "anywire"),
    "raw": ([str(REPO / "bench" / "peers" / "raw_app.py")], "raw"),
    "sio": ([str(REPO / "bench" / "peers" / "sio_app.py")], "sio"),
}


def measure(server: str, tree: Path, clients: int, secs: float) -> tuple[int, int]:
    """(round trips, instructions) of one run."""
    args, dialect = SERVERS[server]
    result, instructions = counted(
        args, tree, secs, lambda port: Generator(port, dialect, "echo", {"ws": clients}, 100, None)
    )
    return int(result["deliveries"]), instructions


def counted(
    args: list[str],
    tree: Path,
    secs: float,
    load: Callable[[int], Generator],
    start: Callable[[int], None] | None = None,
    keep: str | None = None,
) -> tuple[dict[str, Any], int]:
    """Run ``python *args --port P`` from ``tree`` under callgrind with counting off,
    put the load ``load(P)`` makes on it, call ``start(P)`` (if given) once the clients
    are in, and count only while the generator measures for ``secs``. Returns the
    generator's result and the instructions counted. ``keep``: a path to copy callgrind's
    profile to (for ``callgrind_annotate``)."""
    with callgrind.server(args, tree, free_port(), keep) as running:
        gen = load(running.port)
        try:
            gen.ready()
            if start is not None:
                start(running.port)
            callgrind.instrument(running.pid, "on")
            result = gen.measure(secs)
            callgrind.instrument(running.pid, "off")
        finally:
            gen.stop()
    return result, running.instructions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=sorted(SERVERS), default="anywire")
    parser.add_argument("--tree", default=str(REPO), help="the anywire checkout to run")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--secs", type=float, default=8.0)
    args = parser.parse_args()
    callgrind.check_installed()
    trips, instructions = measure(args.server, Path(args.tree).resolve(), args.clients, args.secs)
    print(
        f"{args.server}: {instructions / trips:,.0f} instructions per round trip "
        f"({trips:,} round trips, {args.clients} clients, server user space)"
    )


if __name__ == "__main__":
    main()
