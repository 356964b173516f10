"""Cleanup after many connections, and graceful shutdown, on every transport."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from anywire.clients.python import Client

from .conftest import Server, make_token, start_server
from .raw import RawConn

CYCLES = 1000


async def _metrics(url: str) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        return dict((await http.get(url + "/anywire/metrics")).json())


async def _cycle(server: Server, transport: str, i: int) -> None:
    conn = RawConn(server.url, transport, make_token(f"user-{i % 50}"))
    try:
        hello = await conn.open()
        assert hello["t"] == "hello"
        await conn.send({"t": "join", "s": 1, "id": 1, "r": f"room-{i % 7}"})
        ack = await conn.recv()
        assert ack["t"] == "ack" and ack["ok"] is True
        if i % 2 == 0:
            await conn.send({"t": "close", "c": 4500, "m": "bye"})  # clean goodbye
        # odd cycles just vanish: the session must expire after the resume window
    finally:
        await conn.close()
# Alone (scripts/test's second phase): 1000 cycles as fast as the server takes them; side by
# side (load ~4) its loop ran late and its overload guard answered a negotiate 503.
@pytest.mark.alone
async def test_thousand_cycles_leave_nothing_behind(server: Server) -> None:
    baseline = await _metrics(server.url)
    transports = ("websocket", "sse", "longpoll")
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with sem:
            await _cycle(server, transports[i % 3], i)

    await asyncio.gather(*(one(i) for i in range(CYCLES)))
    # Wait (bounded) for the resume window of the vanished sessions to pass.
    stats: dict[str, int] = {}
    async with asyncio.timeout(20):
        while True:
            stats = await _metrics(server.url)
            if (
                stats["sessions"] == 0
                and stats["session_tasks"] == 0
                and stats["room_entries"] == 0
            ):
                break
            await asyncio.sleep(0.2)
    assert stats["connections"] - baseline["connections"] == CYCLES
    assert stats["sockets"] == 0
    assert stats["rooms"] == 0
    assert stats["users"] == 0
    assert stats["pending_acks"] == 0
    assert stats["pending_tickets"] == 0
    assert stats["background_tasks"] == 0
    # Only the server's own long-lived tasks remain (timer, the metrics request itself...).
    assert stats["asyncio_tasks"] <= baseline["asyncio_tasks"] + 2
    _assert_quiet_log(server)


def _assert_quiet_log(server: Server) -> None:
    """Clients that say goodbye, or just vanish, are business as usual: nothing in the
    server's log (issue #12: 'websocket task failed ... closed by client' tracebacks)."""
    log = server.log.read_text(errors="replace")
    for bad in ("Traceback", "ERROR", "task failed"):
        assert bad not in log, log[-3000:]


async def test_clients_closing_normally_leave_nothing_in_the_log(
    server: Server, transport: str
) -> None:
    async def one(i: int) -> None:
        client = Client(server.url, make_token(f"bye-{transport}-{i}"), transports=(transport,))
        async with client:
            await client.join(f"bye-{i % 3}")
            assert await client.call("echo", i) == i

    await asyncio.gather(*(one(i) for i in range(20)))
    _assert_quiet_log(server)


async def test_sigterm_tells_every_client_to_reconnect() -> None:
    srv = start_server({}, log=None)
    conns = [RawConn(srv.url, t, make_token()) for t in ("websocket", "sse", "longpoll")]
    try:
        for conn in conns:
            assert (await conn.open())["t"] == "hello"
        srv.proc.send_signal(signal.SIGTERM)
        for conn in conns:
            frame = await conn.recv(timeout=5)
            assert frame["t"] == "close" and frame["c"] == 4000, (conn.transport, frame)
            end = await conn.recv(timeout=5)
            assert end["t"] == "_closed", (conn.transport, end)
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown completes.
        assert srv.proc.wait(timeout=10) in (0, -signal.SIGTERM)
        assert "Traceback" not in srv.log.read_text()
    finally:
        for conn in conns:
            await conn.close()
        srv.stop()
