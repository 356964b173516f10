"""Instructions per client receipt (``rx``) at the server, in process: the whole path of
``anywire serve``'s WebSocket read, from the protocol's ``data_received`` through the
direct read (server/wsreading.py, transports/wsread.py), the host and the session's
``acknowledge``, on the real app (issue #17: a receipt cost ~57k instructions in a real
server, NOTES-rxcost.md).

The server's protocol (server/wsprotocol.py) sits on the recording transport of
tests/server/test_ws_direct_read.py; a session was delivered 100 events, and each read
is one masked ``rx`` frame for the last of them (the first read drops them from the
outbox, the others find nothing left to drop: that C-level ``deque`` work, a few hundred
instructions, is not in the figure), with one loop iteration between reads as on a
socket (uvloop's, as ``anywire serve`` runs). Counted by
valgrind's callgrind over two runs of different lengths (``N`` and ``6 N`` reads), so
start-up cancels out; the loop iteration is in the figure (not the kernel's read, nor
epoll: compare bench/fanout_instructions.py ``--rx-every 1`` and ``0`` for those).

    python3 bench/rx_instructions.py                     # JSON, one rx per read
    python3 bench/rx_instructions.py --codec msgpack     # the binary codec
    python3 bench/rx_instructions.py --kind rx-event     # [rx, event] batch per read
    python3 bench/rx_instructions.py --kind idle         # the loop iteration alone
    python3 bench/rx_instructions.py --tree /tmp/main    # another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import callgrind  # noqa: E402

KINDS = ("rx", "rx-event", "idle")


def _reads(tree: str, kind: str, codec: str, n: int) -> None:
    """(In the child.) ``n`` reads of ``kind``, one loop iteration apart."""
    sys.path.insert(0, tree)
    import msgpack
    from websockets.frames import Frame, Opcode

    from anywire.core.settings import Settings
    from anywire.server.app import Anywire
    from tests.server.helpers import issue
    from tests.server.test_ws_direct_read import Pair

    binary = codec == "msgpack"

    def encode(obj: Any) -> bytes:
        if binary:
            return Frame(Opcode.BINARY, msgpack.packb(obj)).serialize(mask=True)
        import json

        return Frame(Opcode.TEXT, json.dumps(obj, separators=(",", ":")).encode()).serialize(
            mask=True
        )

    def zero_masked(payload: bytes) -> bytes:
        """A client frame with a zero mask key (the masked bit set, the payload as it
        is): cheap to make for every read."""
        assert len(payload) < 126
        return bytes([0x82 if binary else 0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload

    async def main() -> None:
        # A flood budget this loop cannot exhaust: it is charged all the same.
        aw = Anywire(anonymous=True, settings=Settings(flood_rate=1e9, flood_burst=10**9))

        @aw.on("nothing")
        def nothing(sock: Any, data: Any) -> None:
            return None

        await aw.start()
        pair = Pair(aw, 1 << 20)
        try:
            ticket = (await issue(aw, "reader", codec)).ticket
            await pair.handshake()
            pair.feed(encode({"t": "connect", "ticket": ticket}))
            await pair.until(lambda: len(pair.frames) > 0)
            sess = next(iter(aw.host.sessions.values()))
            for _ in range(100):  # delivered events for the receipts to acknowledge
                aw.host.push(sess, _outgoing())
            await pair.until(lambda: sess.written == sess.out_seq)
            last = sess.out_seq
            # The reads are made before the loop that reads them (each costs a few
            # hundred instructions, the same in every tree): the same rx every time, or
            # a batch of that rx and a new event.
            if kind == "rx":
                reads = [encode({"t": "rx", "n": last})] * n
            elif kind == "rx-event":
                rx = {"t": "rx", "n": last}
                if binary:
                    pack = msgpack.packb
                    reads = [
                        zero_masked(pack([rx, {"t": "event", "s": i + 1, "e": "nothing"}]))
                        for i in range(n)
                    ]
                else:
                    template = b'[{"t":"rx","n":%d},{"t":"event","s":%%d,"e":"nothing"}]' % last
                    reads = [zero_masked(template % (i + 1)) for i in range(n)]
            else:
                reads = [b""] * n
            read = pair.server.data_received
            for data in reads:
                if data:
                    read(data)
                await asyncio.sleep(0)
            assert not pair.wire.closed, pair.close_code()
            if kind != "idle":
                assert sess.floor == last + 1 and not sess.outbox, sess.floor
            if kind == "rx-event":
                assert sess.in_last == n, sess.in_last
        finally:
            await pair.end(aw)

    def _outgoing() -> Any:
        from anywire.core.codec import Outgoing

        return Outgoing("event", {"e": "tick", "d": 1})

    try:  # the loop anywire serve runs (uvicorn's "auto" takes uvloop when installed)
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def _count(tree: str, kind: str, codec: str, n: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [__file__, "--child", tree, kind, codec, str(n)]
    return callgrind.run_counted(argv, env, timeout=900)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _reads(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=str(REPO), help="the anywire checkout to run")
    parser.add_argument("--kind", choices=KINDS, default="rx")
    parser.add_argument("--codec", choices=["json", "msgpack"], default="json")
    parser.add_argument("--reads", type=int, default=1000, help="N: N and 6 N reads")
    args = parser.parse_args()
    callgrind.check_installed()
    tree = str(Path(args.tree).resolve())
    short = _count(tree, args.kind, args.codec, args.reads)
    long = _count(tree, args.kind, args.codec, 6 * args.reads)
    per = (long - short) / (5 * args.reads)
    print(f"{args.kind} ({args.codec}): {per:,.0f} instructions per read ({tree})")


if __name__ == "__main__":
    main()
