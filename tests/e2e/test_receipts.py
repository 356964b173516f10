"""The client acknowledges by the receipt rule the server advertises (protocol 6.4): a
drawn count of at most ``rx.frames``, and the tail of a burst within ``rx.ms``, so the
server's outbox stays bounded and drains without a ping.

WebSocket and SSE carry ``rx`` frames (SSE by POST): the cadence is checked on the
client's receipts, the tail on the server's outbox. Long-poll acknowledges with ``ack=``
on every poll instead (unchanged by the rule): there the outbox drains with the next
poll, and its bound is a poll's worth of frames (``max_batch``) rather than the count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from anywire.clients.python import Client

from .conftest import Server, make_token, start_server

OUTBOX = 200  # the advertised rx.frames is a quarter of it: 50
FRAMES = OUTBOX // 4
RX_WAIT = 1.0  # rx.ms: each stretch's time limit is 0.5-1 s
N = 401  # events of the burst (with the call's ack, 402 frames: not a multiple of 16)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # Pings every 30 s: none falls in a test, so only the rule acknowledges a burst's tail.
    srv = start_server(
        {"AW_OUTBOX": str(OUTBOX), "AW_RX_WAIT": str(RX_WAIT), "AW_PING_INTERVAL": "30"}
    )
    yield srv
    srv.stop()


async def test_receipts_follow_the_advertised_rule_and_the_outbox_stays_bounded(
    server: Server, transport: str
) -> None:
    client = Client(server.url, make_token("rx-" + transport), transports=[transport])
    got: list[int] = []
    receipts: list[int] = []  # the client's receipt position, each time it moved
    done = asyncio.Event()

    @client.on("n")
    def on_n(i: int) -> None:
        if client.peer.rx_sent != (receipts[-1] if receipts else 0):
            receipts.append(client.peer.rx_sent)
        got.append(i)
        if len(got) == N:
            done.set()

    async with client:
        most = await client.call("paced", {"n": N, "step": 10, "pause": 0.02}, timeout=30)
        async with asyncio.timeout(20):
            await done.wait()
        assert got == list(range(N))
        # The tail (whatever the last drawn threshold left owed) is acknowledged within
        # rx.ms, with nothing more received: by the client's timer (ws, sse) or the next
        # poll (longpoll).
        tail = await client.call("settled", RX_WAIT + 3.0, timeout=10)
        assert tail is not None, "the tail of the burst was never acknowledged"
        if transport == "longpoll":
            assert most <= 100 + 20  # a poll's worth (max_batch) while it is on its way
            return
        assert most <= 2 * FRAMES + 20  # the count, plus what is on its way
        gaps = [b - a for a, b in zip([0, *receipts], receipts, strict=False)]
        assert gaps and max(gaps) <= FRAMES, gaps
        # A drawn threshold in [25, 50] each time (the time rule may cut one short in a
        # pause): far fewer than one receipt per 16 frames.
        assert len(receipts) <= (N + 1) // (FRAMES // 2) + 2, receipts
