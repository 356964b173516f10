"""anywire's own cost per echo round trip, without sockets, uvicorn or a load generator.

``N`` connections drive the real WebSocket transport (``anywire.transports.websocket``)
and session host of the bench app with fake ASGI ``receive``/``send`` callables: each
answer schedules that connection's next request with ``loop.call_soon``, so the
connections interleave on the event loop the way they do in a server. ``--raw`` runs the
same harness against a bare ASGI echo app: the difference is what anywire adds.

    python3 bench/inprocess_echo.py                 # 100 connections x 1,000 round trips
    python3 bench/inprocess_echo.py --raw           # the harness alone
    python3 bench/inprocess_echo.py --instructions  # callgrind: instructions per round trip
    python3 bench/inprocess_echo.py --direct        # answers by the direct write, as under
                                                    # `anywire serve` (transports/direct.py)
    python3 bench/inprocess_echo.py --direct --read # and requests by the direct read
                                                    # (transports/wsread.py), as there too

Wall-clock figures on a shared machine swing by 10-20%; ``--instructions`` counts
instructions with valgrind's callgrind (two runs of different lengths, so start-up
cancels out), which repeat exactly, and is how small hot-path changes were compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - uvicorn[standard] installs it
    uvloop = None

from anywire.bench.app import make_app
from anywire.core.auth import Identity
from anywire.transports.websocket import WebSocketTransport

PAD = "x" * 70
SCOPE = {"type": "websocket", "headers": [], "path": "/anywire/ws"}


async def raw_echo(scope: Any, receive: Any, send: Any) -> None:
    """The bare ASGI echo app the harness is compared with."""
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message["text"]})


class DirectRead:
    """The server protocol's direct read (transports/wsread.DirectRead), minus the
    parsing: a request goes to the sink once it took over, else to the queue."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.queue = queue
        self.sink: Any = None
        self.waiting: list[bytes] = []

    def read_direct(self, sink: Any) -> bool:
        if not self.queue.empty():
            return False
        self.sink = sink
        return True

    def deliver(self, message: dict[str, Any]) -> None:
        if self.sink is None or message["type"] != "websocket.receive":
            self.queue.put_nowait(message)
        elif self.waiting or not self.sink(message["text"].encode(), False):
            self.waiting.append(message["text"].encode())

    def resume_direct(self) -> None:
        while self.waiting and self.sink is not None:
            if not self.sink(self.waiting[0], False):
                return
            self.waiting.pop(0)

    def end_direct(self) -> list[tuple[bytes, bool]]:
        waiting, self.waiting, self.sink = self.waiting, [], None
        return [(w, False) for w in waiting]


async def measure(
    conns: int, per_conn: int, raw: bool, direct: bool = False, read: bool = False
) -> float:
    """Seconds per round trip over ``conns`` interleaved connections."""
    aw = make_app()
    await aw.start()
    loop = asyncio.get_running_loop()
    transport = WebSocketTransport(aw.host)

    async def connection(i: int) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        queue.put_nowait({"type": "websocket.connect"})
        if not raw:
            issued = await aw.host.issuer.issue(Identity(f"u{i}"), "/", "json", None, {})
            ticket = issued.ticket
            connect = json.dumps({"t": "connect", "ticket": ticket})
            queue.put_nowait({"type": "websocket.receive", "text": connect})
        sent = 0
        reading = DirectRead(queue)

        def next_request() -> dict[str, Any]:
            nonlocal sent
            sent += 1
            if sent > per_conn:
                return {"type": "websocket.disconnect", "code": 1000}
            if not raw and sent % 16 == 1 and sent > 1:
                # Receipts, as the load generator and real clients send them (every 16
                # frames received): without them every outbox would fill to outbox_size
                # and the collector would scan 100 full outboxes, a cost no real server
                # with acknowledging clients pays. Every answer so far was one frame.
                rx = f'{{"t":"rx","n":{sent - 1}}}'
                reading.deliver({"type": "websocket.receive", "text": rx})
            # Formatted, not json.dumps(): the harness should cost little of its own.
            text = f'{{"t":"event","s":{sent},"id":{sent},"e":"echo","d":{{"ts":1,"p":"{PAD}"}}}}'
            return {"type": "websocket.receive", "text": text}

        def write_now(data: bytes, binary: bool) -> bool:
            # anywire serve's direct write (transports/direct.py), taken for every message.
            loop.call_soon(reading.deliver, next_request())
            return True

        async def receive() -> dict[str, Any]:
            return await queue.get()

        async def send(message: dict[str, Any]) -> None:
            # The accept (raw) or the hello (anywire) starts the loop; every answer
            # schedules the next request, as a client's reply would arrive later.
            if message["type"] == "websocket.send" or (
                raw and message["type"] == "websocket.accept"
            ):
                loop.call_soon(queue.put_nowait, next_request())

        extensions: dict[str, Any] = {"anywire.write": write_now} if direct else {}
        if read:
            extensions["anywire.read"] = reading
        scope = {**SCOPE, "extensions": extensions}
        await (raw_echo if raw else transport)(scope, receive, send)

    start = time.perf_counter()
    await asyncio.gather(*(connection(i) for i in range(conns)))
    elapsed = time.perf_counter() - start
    await aw.stop(grace=0.1)
    return elapsed / (conns * per_conn)


def instructions(conns: int, raw: bool, direct: bool = False, read: bool = False) -> float:
    """Instructions per round trip under callgrind (difference of two run lengths)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind")
    python = Path(sys.executable).resolve()  # not a shell shim: valgrind follows no child
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for per in (40, 140):
            cmd = [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.{per}",
                str(python), __file__, "--conns", str(conns), "--per-conn", str(per),
            ]  # fmt: skip
            if raw:
                cmd.append("--raw")
            if direct:
                cmd.append("--direct")
            if read:
                cmd.append("--read")
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate(timeout=900)
            line = [x for x in err.decode().splitlines() if "Collected" in x]
            if proc.returncode != 0 or not line:
                raise SystemExit(f"callgrind run failed: {err.decode()[-500:]}")
            counts.append(int(line[-1].split()[-1]))
    return (counts[1] - counts[0]) / (conns * 100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--per-conn", type=int, default=1000)
    parser.add_argument("--raw", action="store_true", help="the bare ASGI echo app")
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument(
        "--direct", action="store_true", help="offer the direct write (as anywire serve does)"
    )
    parser.add_argument(
        "--read", action="store_true", help="offer the direct read (as anywire serve does)"
    )
    args = parser.parse_args()
    name = "raw ASGI echo" if args.raw else "anywire"
    if args.instructions:
        n = instructions(args.conns, args.raw, args.direct, args.read)
        print(f"{name}: {n:,.0f} instructions per round trip ({args.conns} connections)")
        return
    run = uvloop.run if uvloop is not None else asyncio.run
    per_rt = run(measure(args.conns, args.per_conn, args.raw, args.direct, args.read))
    print(f"{name}: {per_rt * 1e6:.2f} us per round trip ({args.conns} connections)")


if __name__ == "__main__":
    main()
