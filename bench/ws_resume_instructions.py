"""Server instructions per resume, counted by callgrind: a resume over the WebSocket
without negotiate (protocol section 2.2.1) against negotiate + upgrade with a ticket,
free of the wall-clock noise of a shared machine.

The bench app runs under valgrind's callgrind (counting off until the resumes run).
``--clients`` of bench/storm.py's protocol-level clients connect; then, one after
another, each drops its connection and resumes at once (so no resume window passes and
the loop is never late enough to shed, which would make a different run), with counting
on. The figure is server user-space instructions per resume (the kernel's accept,
reads and writes are not in it).

    python3 bench/ws_resume_instructions.py                   # direct resumes
    python3 bench/ws_resume_instructions.py --no-ws-resume    # negotiate + ticket
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from anywire.bench.runner import free_port  # noqa: E402
from bench import callgrind  # noqa: E402
from bench.storm import Stats, StormClient  # noqa: E402


async def resumes(port: int, pid: int, clients: int, ws_resume: bool) -> Stats:
    """Connect ``clients``, then drop and resume each in turn with counting on."""
    stats = Stats()
    crowd = [StormClient(i, port, "127.0.0.1", stats, ws_resume) for i in range(clients)]
    for c in crowd:
        async with asyncio.timeout(60):
            await c._open()
    callgrind.instrument(pid, "on")
    for c in crowd:
        c.drop()
        c.writer = None
        async with asyncio.timeout(60):
            # A refusal (the server sheds a negotiate that waited in the kernel: under
            # valgrind it can) is counted and the resume tried again at once.
            while await c._open() is not None:
                c.writer = None
    callgrind.instrument(pid, "off")
    for c in crowd:
        c.drop()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--no-ws-resume", dest="ws_resume", action="store_false")
    args = parser.parse_args()
    callgrind.check_installed()
    with callgrind.server(["-m", "anywire.bench.app"], REPO, free_port()) as running:
        stats = asyncio.run(resumes(running.port, running.pid, args.clients, args.ws_resume))
    total = running.instructions
    print(
        f"ws_resume={args.ws_resume} clients={args.clients} direct={stats.direct} "
        f"recovered={stats.recovered} refused={stats.refused + stats.direct_refused} "
        f"instructions={total} per_resume={total // args.clients}"
    )


if __name__ == "__main__":
    main()
