"""A peer that stops reading: what it is owed waits for it, in order and complete, and
nobody else waits with it (its writes stall; other connections' do not)."""

from __future__ import annotations

import asyncio
import time

from .conftest import Server, make_token
from .raw import RawConn

N, SIZE = 900, 16_000  # ~14 MB owed: more than socket buffers and the client hold


async def test_a_stalled_reader_loses_nothing_and_holds_up_nobody(
    server: Server, transport: str
) -> None:
    stalled = RawConn(server.url, transport, make_token("stalled"))
    other = RawConn(server.url, transport, make_token("other"))
    try:
        await stalled.open()
        await other.open()
        stalled.reading.clear()  # from now on it takes nothing in
        await stalled.send({"t": "event", "s": 1, "id": 1, "e": "owe", "d": {"n": N, "size": SIZE}})

        # Meanwhile the other connection is answered at once, again and again.
        for i in range(1, 21):
            started = time.monotonic()
            await other.send({"t": "event", "s": i, "id": i, "e": "echo", "d": i})
            ack = await other.recv(timeout=5)
            assert ack["t"] == "ack" and ack["id"] == i and ack["d"] == i
            assert time.monotonic() - started < 2.0

        stalled.reading.set()  # it reads again: everything arrives, once, in order
        seen: list[int] = []
        acked = False
        async with asyncio.timeout(30):
            while len(seen) < N or not acked:
                frame = await stalled.recv(timeout=30)
                if frame["t"] == "event" and frame["e"] == "big":
                    assert len(frame["d"]["p"]) == SIZE
                    seen.append(frame["d"]["i"])
                elif frame["t"] == "ack":
                    assert frame["id"] == 1 and frame["d"] == N
                    acked = True
                else:
                    raise AssertionError(f"unexpected frame {frame}")
        assert seen == list(range(N))
    finally:
        await stalled.close()
        await other.close()
