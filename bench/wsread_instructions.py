"""Instructions per WebSocket read of ``anywire serve``'s protocol, in process: the real
protocol class (server/wsprotocol.py) on the recording transport of
tests/server/test_ws_direct_read.py, reading directly into a sink that does nothing, so
the figure is the frame parse and hand-over alone (issue #17: server/wsparse.py).

Counted by valgrind's callgrind over two runs of different lengths (``N`` and ``6 N``
reads), so start-up cancels out; PYTHONHASHSEED is fixed, and the figure repeats within
~0.1k.

    python3 bench/wsread_instructions.py                    # one echo-sized frame per read
    python3 bench/wsread_instructions.py --kind rx          # one receipt frame per read
    python3 bench/wsread_instructions.py --kind echo3       # three frames in one read
    python3 bench/wsread_instructions.py --tree ../other    # another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import callgrind  # noqa: E402


def _reads(tree: str, kind: str, n: int) -> None:
    """(In the child.) ``n`` reads of ``kind`` into a sink that takes them."""
    sys.path.insert(0, tree)
    from websockets.frames import Frame, Opcode

    from tests.server.test_ws_direct_read import _connected, _echo

    async def main() -> None:
        async with _connected([]) as pair:
            server = pair.server
            server.sink = lambda data, binary: True
            echo = json.dumps(_echo(1, "hello world")).encode()
            frames = {
                "echo": Frame(Opcode.TEXT, echo).serialize(mask=True),
                "rx": Frame(Opcode.TEXT, b'{"t":"rx","n":12}').serialize(mask=True),
                "echo3": Frame(Opcode.TEXT, echo).serialize(mask=True) * 3,
            }
            data = frames[kind]
            read = server.data_received
            for _ in range(n):
                read(data)
            server.sink = None

    asyncio.run(main())


def _count(tree: str, kind: str, n: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    return callgrind.run_counted([__file__, "--child", tree, kind, str(n)], env, timeout=600)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _reads(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=str(REPO), help="the anywire checkout to run")
    parser.add_argument("--kind", choices=["echo", "rx", "echo3"], default="echo")
    parser.add_argument("--reads", type=int, default=1000, help="N: N and 6 N reads")
    args = parser.parse_args()
    callgrind.check_installed()
    tree = str(Path(args.tree).resolve())
    short = _count(tree, args.kind, args.reads)
    long = _count(tree, args.kind, 6 * args.reads)
    per = (long - short) / (5 * args.reads)
    print(f"{args.kind}: {per:,.0f} instructions per read ({tree})")


if __name__ == "__main__":
    main()
