"""A slowloris attack in a process of its own (test_http_limits): ``python3 -m
tests.server.slowloris PORT N``. N connections each dribble a request head, one byte every
0.5 s, and each one the server closes is replaced by another. It prints ``in`` once all N
have connected, keeps the attack up until a line (or end of file) arrives on stdin, then
waits for the connections open at that moment to be closed and prints, as one JSON list,
how long every connection lived (seconds, each capped at 30).

Its own process, so that the 500 attackers (about 1,000 wake-ups a second) do not share an
event loop with the client the test measures: on a loaded machine they slowed that client
more than the server did.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable

INTERVAL = 0.5  # seconds between bytes
LIMIT = 30.0  # seconds a connection is dribbled at most


async def slowloris(port: int, opened: Callable[[], None] = lambda: None) -> float:
    """Dribble a request head one byte per INTERVAL; seconds until the server closes the
    connection (LIMIT if it never does). ``opened()`` once connected."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    opened()
    head = b"GET /anywire/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    try:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                async with asyncio.timeout(INTERVAL):
                    if await reader.read(1) == b"" or reader.at_eof():
                        break
            except TimeoutError:
                pass
            if time.monotonic() - started > LIMIT:
                break
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def attacker(port: int, opened: Callable[[], None], stop: asyncio.Event) -> list[float]:
    """One connection after another until ``stop``; how long each lived."""
    lived = [await slowloris(port, opened)]
    while not stop.is_set():
        lived.append(await slowloris(port))
    return lived


async def main(port: int, n: int) -> None:
    stop, count = asyncio.Event(), [0]

    def opened() -> None:
        count[0] += 1
        if count[0] == n:
            print("in", flush=True)

    loop = asyncio.get_running_loop()
    # Any line, or end of file (the test went away), ends the attack.
    loop.run_in_executor(None, sys.stdin.readline).add_done_callback(lambda _: stop.set())
    lived = await asyncio.gather(*(attacker(port, opened, stop) for _ in range(n)))
    print(json.dumps([t for each in lived for t in each]), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
