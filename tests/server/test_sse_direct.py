"""The SSE writer's direct write (#17, transports/ssewrite.py, server/httpdirect.py):
where the server puts a chunk writer in the scope, events are written in the pusher's
call through it, not through ``send()``; where it declines (socket buffer full, stream
over), ``send()`` carries the chunk, and nothing is lost or reordered either way.
Recording fakes for ASGI receive/send, the chunk writer and uvicorn's request cycle;
tests/e2e runs the real ones (``anywire serve``)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from anywire.core.rooms import Member
from anywire.server.app import Anywire
from anywire.server.httpdirect import ChunkWriter
from anywire.transports.base import Link
from anywire.transports.sse import SSETransport
from anywire.transports.ssestream import LEAN
from anywire.transports.ssewrite import CHUNK_KEY

from .helpers import issue
from .wsroom import deliver as _deliver
from .wsroom import quiet as _quiet

pytestmark = pytest.mark.skipif(not LEAN, reason="this sse-starlette takes its own path")


class StreamPeer:
    """One SSE client: ``receive`` waits for a disconnect; every chunk written, by
    ``send()`` or by the direct write (``full`` makes that decline), is kept in order."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.order: list[bytes] = []  # every body chunk, by either path, in order
        self.direct = 0  # chunks written by the direct write
        self.sends = 0  # body chunks written by send()
        self.full = False
        self.changed = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            self.sends += 1
            self.order.append(message["body"])
            self.changed.set()

    def write(self, data: bytes) -> bool:
        if self.full:
            return False
        self.direct += 1
        self.order.append(data)
        self.changed.set()
        return True

    def events(self) -> list[Any]:
        """The data of every event, by whichever path, in the order written."""
        out = []
        for chunk in self.order:
            if not chunk.startswith(b"data: "):
                continue  # the padding, keepalives
            frames = json.loads(chunk[6:])
            for f in frames if isinstance(frames, list) else [frames]:
                if f["t"] == "event" and f["e"] == "m":
                    out.append(f["d"])
        return out

    def frames(self, kind: str) -> list[Any]:
        out = []
        for chunk in self.order:
            if chunk.startswith(b"data: "):
                frames = json.loads(chunk[6:])
                out += [f for f in (frames if isinstance(frames, list) else [frames])]
        return [f for f in out if f["t"] == kind]

    async def wait_for(self, cond: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not cond():
                self.changed.clear()
                await self.changed.wait()


async def _connected(
    n: int, direct: bool = True
) -> tuple[Anywire, list[StreamPeer], list[asyncio.Task[None]], list[str]]:
    aw = Anywire(anonymous=True)
    await aw.start()
    transport = SSETransport(aw.host)
    peers, tasks, sids = [], [], []
    for i in range(n):
        issued = await issue(aw, f"u{i}")
        peer = StreamPeer()
        scope: dict[str, Any] = {
            "type": "http",
            "method": "GET",
            "path": "/anywire/sse",
            "query_string": f"ticket={issued.ticket}".encode(),
            "headers": [],
        }
        if direct:
            scope["extensions"] = {CHUNK_KEY: peer.write}
        peers.append(peer)
        sids.append(issued.sid)
        tasks.append(asyncio.create_task(transport(scope, peer.receive, peer.send)))
        await peer.wait_for(lambda p=peer: bool(p.frames("hello")))
        aw.host.rooms.join("/", "room", Member(issued.sid, None, None))
    await _quiet()  # every stream's task parked
    return aw, peers, tasks, sids


async def _end(aw: Anywire, peers: list[StreamPeer], tasks: list[asyncio.Task[None]]) -> None:
    for p in peers:
        p.gone.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    await aw.stop(grace=0.1)


async def _one_by_one(aw: Anywire, values: range) -> None:
    """Deliver each value alone (a few loop iterations apart: nothing to coalesce)."""
    for i in values:
        await _quiet()
        _deliver(aw, i)


async def test_events_are_written_in_the_delivering_call_not_through_send() -> None:
    aw, peers, tasks, _ = await _connected(2)
    try:
        sends = [p.sends for p in peers]  # the padding and the hello
        for i in range(3):
            await _quiet()
            _deliver(aw, i)
            for p in peers:
                assert p.events() == list(range(i + 1))  # written in the delivering call
        assert [p.sends for p in peers] == sends  # none through send()
        assert all(p.direct == 3 for p in peers)
        assert all(c.endswith(b"\r\n\r\n") for p in peers for c in p.order)
    finally:
        await _end(aw, peers, tasks)


async def test_a_declined_direct_write_goes_through_send_in_order() -> None:
    aw, peers, tasks, _ = await _connected(2)
    declining, other = peers
    try:
        await _quiet()
        _deliver(aw, 0)
        declining.full = True  # its socket's buffer is full: send() must carry on
        before = declining.sends
        await _one_by_one(aw, range(1, 4))
        await declining.wait_for(lambda: declining.events() == [0, 1, 2, 3])
        assert declining.sends > before  # the declined ones went through send()
        declining.full = False
        await _one_by_one(aw, range(4, 6))
        await declining.wait_for(lambda: declining.events() == [0, 1, 2, 3, 4, 5])
        assert other.events() == [0, 1, 2, 3, 4, 5]
        assert other.direct == 6
    finally:
        await _end(aw, peers, tasks)


async def test_a_burst_is_written_at_once_then_batched() -> None:
    aw, peers, tasks, _ = await _connected(1)
    (peer,) = peers
    try:
        await _quiet()
        for i in range(5):  # one iteration: the first at once, the rest in one batch
            _deliver(aw, i)
        assert peer.events() == [0]
        await peer.wait_for(lambda: peer.events() == [0, 1, 2, 3, 4])
        assert peer.direct == 2
    finally:
        await _end(aw, peers, tasks)


async def test_a_busy_rooms_batched_writes_leave_the_collector_nothing_per_stream() -> None:
    """As for WebSocket (test_ws_adaptive.py): queueing a stream's batched write makes no
    object the cyclic collector tracks (a bound method per ``Batch.add`` was one per
    stream, alive until the round, setting off young collections in a busy room)."""
    n = 200
    aw, peers, tasks, sids = await _connected(n)
    try:
        await _quiet()
        _deliver(aw, 0)  # written at once
        gc.disable()  # (no collection may reset the counts while they are read)
        try:
            young = gc.get_count()[0]
            _deliver(aw, 1)  # wrote in this iteration: every stream's write is batched
            added = gc.get_count()[0] - young
        finally:
            gc.enable()
        links = [aw.host.sessions[sid].connection for sid in sids]
        assert all(isinstance(k, Link) and k.due for k in links)
        assert added < n // 4, f"{added} tracked objects alive for {n} batched writes"
        for p in peers:
            await p.wait_for(lambda p=p: p.events() == [0, 1])
    finally:
        await _end(aw, peers, tasks)


async def test_pushes_while_a_batched_write_is_due_go_out_in_it_without_waking_it() -> None:
    """While a batched write is due (Link.due), the host's pushes skip the wake-up; they
    go out in it, in order, and once it ran the next push wakes the writer again. A close
    asked for meanwhile still goes out after every event."""
    aw, peers, tasks, sids = await _connected(2)
    links = [aw.host.sessions[sid].connection for sid in sids]
    wakes = [0, 0]
    for n, link in enumerate(links):
        assert isinstance(link, Link) and link.on_wake is not None
        link.on_wake = _counting(link.on_wake, wakes, n)
    try:
        await _quiet()
        _deliver(aw, 0)  # written at once
        _deliver(aw, 1)  # wrote in this iteration: batched, the write is due
        assert wakes == [2, 2] and all(isinstance(k, Link) and k.due for k in links)
        for i in range(2, 5):
            _deliver(aw, i)
        assert wakes == [2, 2]  # not woken again: the due write takes these too
        for p in peers:
            await p.wait_for(lambda p=p: p.events() == [0, 1, 2, 3, 4])
            assert p.direct == 2  # event 0, events 1-4
        assert not any(isinstance(k, Link) and k.due for k in links)
        await _quiet()
        _deliver(aw, 5)
        assert wakes == [3, 3]  # woken again, and written at once
        assert all(p.events() == [0, 1, 2, 3, 4, 5] and p.direct == 3 for p in peers)
        _deliver(aw, 6)  # batched: due again
        assert all(isinstance(k, Link) and k.due for k in links)
        aw.host.close_session(aw.host.sessions[sids[1]], 4000, "bye")  # wakes as ever
        _deliver(aw, 7)
        async with asyncio.timeout(5):
            await tasks[1]
        assert peers[1].events() == [0, 1, 2, 3, 4, 5, 6, 7]  # everything, then the close
        assert [f["c"] for f in peers[1].frames("close")] == [4000]
        await peers[0].wait_for(lambda: peers[0].events() == [0, 1, 2, 3, 4, 5, 6, 7])
    finally:
        await _end(aw, peers, tasks)


def _counting(wake: Callable[[], None], counts: list[int], n: int) -> Callable[[], None]:
    def counted() -> None:
        counts[n] += 1
        wake()

    return counted


async def test_without_the_extension_events_go_through_send() -> None:
    aw, peers, tasks, _ = await _connected(1, direct=False)
    (peer,) = peers
    try:
        await _one_by_one(aw, range(3))
        await peer.wait_for(lambda: peer.events() == [0, 1, 2])
        assert peer.direct == 0
    finally:
        await _end(aw, peers, tasks)


async def test_a_close_goes_out_through_send_and_ends_the_stream() -> None:
    aw, peers, tasks, sids = await _connected(1)
    (peer,) = peers
    try:
        await _quiet()
        _deliver(aw, 0)
        aw.host.close_session(aw.host.sessions[sids[0]], 4000, "bye")
        async with asyncio.timeout(5):
            await tasks[0]
        assert peer.events() == [0]
        assert [f["c"] for f in peer.frames("close")] == [4000]
    finally:
        await _end(aw, peers, tasks)


def _cycle(**state: Any) -> SimpleNamespace:
    """uvicorn's RequestResponseCycle, the fields ChunkWriter reads, with a recording
    transport."""
    written: list[bytes] = []
    transport = SimpleNamespace(write=written.append, is_closing=lambda: False)
    fields = {
        "response_started": True,
        "response_complete": False,
        "disconnected": False,
        "chunked_encoding": True,
        "flow": SimpleNamespace(write_paused=False),
        "transport": transport,
        "written": written,
    }
    return SimpleNamespace(**(fields | state))


def test_the_chunk_writer_frames_a_chunk_as_uvicorn_does() -> None:
    cycle = _cycle()
    assert ChunkWriter(cycle)(b"data: x\r\n\r\n")  # type: ignore[arg-type]
    assert cycle.written == [b"b\r\ndata: x\r\n\r\n\r\n"]


@pytest.mark.parametrize(
    "state",
    [
        {"response_started": False},
        {"response_complete": True},
        {"disconnected": True},
        {"chunked_encoding": False},
        {"flow": SimpleNamespace(write_paused=True)},
    ],
)
def test_the_chunk_writer_declines_where_send_would_wait_or_refuse(state: dict[str, Any]) -> None:
    cycle = _cycle(**state)
    assert not ChunkWriter(cycle)(b"data: x\r\n\r\n")  # type: ignore[arg-type]
    assert cycle.written == []
