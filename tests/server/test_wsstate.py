"""The WebSocket protocol's per-connection state (issue #17): the small queue and flag
that stand in for uvicorn's asyncio.Queue and asyncio.Event, and the handshake let go
once the connection is accepted, on a real uvicorn with a real websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from websockets.asyncio.client import connect

from anywire.core.settings import Settings
from anywire.server.cli import config
from anywire.server.wsstate import Gate, Inbox

# --- Inbox -----------------------------------------------------------------------------


async def test_inbox_is_first_in_first_out() -> None:
    inbox = Inbox()
    assert inbox.empty()
    for i in range(5):
        inbox.put_nowait(i)
    assert inbox.qsize() == 5 and not inbox.empty()
    assert [await inbox.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert inbox.empty()


async def test_inbox_get_waits_for_a_put() -> None:
    inbox = Inbox()
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not getter.done()
    inbox.put_nowait("m")
    async with asyncio.timeout(1):
        assert await getter == "m"


async def test_inbox_serves_concurrent_getters_in_arrival_order() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    async with asyncio.timeout(1):
        assert (await first, await second) == ("a", "b")


async def test_a_getter_cancelled_while_waiting_loses_nothing() -> None:
    inbox = Inbox()
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    inbox.put_nowait("kept")
    async with asyncio.timeout(1):
        assert await inbox.get() == "kept"


async def test_a_getter_cancelled_after_its_wake_up_passes_it_on() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("x")  # wakes the first getter...
    first.cancel()  # ...which is cancelled before it runs
    with contextlib.suppress(asyncio.CancelledError):
        await first
    async with asyncio.timeout(1):
        assert await second == "x"


# --- Gate ------------------------------------------------------------------------------


async def test_gate_starts_open_and_waits_while_closed() -> None:
    gate = Gate()
    assert gate.is_set()
    async with asyncio.timeout(1):
        assert await gate.wait()
    gate.clear()
    assert not gate.is_set()
    waiters = [asyncio.create_task(gate.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    gate.set()
    async with asyncio.timeout(1):
        assert await asyncio.gather(*waiters) == [True, True, True]


async def test_a_cancelled_gate_waiter_leaves_the_others_waiting() -> None:
    gate = Gate()
    gate.clear()
    gone, kept = asyncio.create_task(gate.wait()), asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    gone.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await gone
    assert not kept.done()
    gate.set()
    async with asyncio.timeout(1):
        assert await kept


# --- on a real uvicorn -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Echo:
    """An ASGI WebSocket echo app that records the scope's headers it was given."""

    def __init__(self) -> None:
        self.headers: list[Any] = []
        self.accepted = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        self.headers = scope["headers"]
        self.accepted.set()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"]})


@contextlib.asynccontextmanager
async def _serving(app: _Echo) -> AsyncIterator[tuple[uvicorn.Server, int]]:
    port = _free_port()
    cfg = config(app, "127.0.0.1", port, "warning", 1 << 20, settings=Settings())
    cfg.lifespan = "off"
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield server, port
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


async def test_the_protocol_keeps_no_handshake_and_echoes_a_pipelined_burst() -> None:
    app = _Echo()
    async with _serving(app) as (server, port):
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers={"X-Big": "v" * 2000}):
            async with asyncio.timeout(5):
                await app.accepted.wait()
            (protocol,) = server.server_state.connections
            assert isinstance(protocol.queue, Inbox)  # type: ignore[attr-defined]
            assert isinstance(protocol.writable, Gate)  # type: ignore[attr-defined]
            assert protocol.request is None and protocol.response is None  # type: ignore[attr-defined]
            # The app still has every header, the big one included.
            assert (b"x-big", b"v" * 2000) in app.headers
        # Many messages in one TCP write: each comes back, in order.
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            sent = [f"m{i}" for i in range(200)]
            for text in sent:
                await ws.send(text)
            async with asyncio.timeout(10):
                got = [await ws.recv() for _ in sent]
            assert got == sent
