"""The WebSocket writer's adaptive coalescing (#17): a push to an idle connection is
written at once, in the pusher's call; pushes to a connection that already wrote in this
loop iteration (or the one before: a busy room) are batched into one message; a write
that has to wait for the socket goes on in a task and loses or reorders nothing.
Recording fakes for ASGI receive/send, as in test_ws_flusher.py."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable
from typing import Any

from anywire.core.closecodes import CloseCode
from anywire.server.app import Anywire
from anywire.transports.base import Link

from .test_ws_flusher import FakePeer
from .wsroom import connected, deliver, end, quiet


def _events(peer: FakePeer) -> list[Any]:
    """The data of every event the peer got, in order."""
    out = []
    for m in peer.sent:
        if m["type"] != "websocket.send":
            continue
        frames = json.loads(m["text"])
        for f in frames if isinstance(frames, list) else [frames]:
            if f["t"] == "event" and f["e"] == "m":
                out.append(f["d"])
    return out


def _messages(peer: FakePeer) -> int:
    return sum(m["type"] == "websocket.send" for m in peer.sent)


async def _connected(n: int) -> tuple[Anywire, list[FakePeer], list[asyncio.Task[None]]]:
    """``n`` peers in room "room", each past its hello."""
    return await connected(n, FakePeer, lambda p: _messages(p) >= 1)


async def test_an_event_to_idle_connections_is_written_in_the_delivering_call() -> None:
    aw, peers, tasks = await _connected(3)
    try:
        await quiet()  # nobody has written lately
        before = [_messages(p) for p in peers]
        deliver(aw, 1)
        # No loop iteration has run since: only a write in the call itself shows here.
        assert [_messages(p) - b for p, b in zip(peers, before, strict=True)] == [1, 1, 1]
        assert all(_events(p) == [1] for p in peers)
    finally:
        await end(aw, peers, tasks)


async def test_a_burst_in_one_iteration_is_batched_after_the_first_write() -> None:
    aw, peers, tasks = await _connected(2)
    try:
        await quiet()
        before = [_messages(p) for p in peers]
        for i in range(10):
            deliver(aw, i)
        for p in peers:
            await p.wait_for(lambda p=p: _events(p) == list(range(10)))
        # The first event at once, the other nine together in one message.
        assert [_messages(p) - b for p, b in zip(peers, before, strict=True)] == [2, 2]
    finally:
        await end(aw, peers, tasks)


async def test_events_apart_are_each_written_at_once() -> None:
    aw, peers, tasks = await _connected(1)
    (peer,) = peers
    try:
        for i in range(5):
            await quiet()
            before = _messages(peer)
            deliver(aw, i)
            assert _messages(peer) == before + 1
        assert _events(peer) == [0, 1, 2, 3, 4]
    finally:
        await end(aw, peers, tasks)


async def test_an_event_every_iteration_is_batched_after_the_first() -> None:
    # A busy room: something to write in every iteration. Writing each at once would
    # cost a message per event; batching with the next iteration's halves that at least.
    aw, peers, tasks = await _connected(1)
    (peer,) = peers
    try:
        await quiet()
        before = _messages(peer)
        for i in range(20):
            deliver(aw, i)
            await asyncio.sleep(0)
        await peer.wait_for(lambda: _events(peer) == list(range(20)))
        assert _messages(peer) - before <= 11
    finally:
        await end(aw, peers, tasks)


async def test_a_write_that_waits_for_the_socket_goes_on_later_in_order() -> None:
    aw, peers, tasks = await _connected(2)
    paused, other = peers
    try:
        paused.gate = asyncio.Event()  # its socket's buffer is full from now on
        await quiet()
        deliver(aw, 0)
        assert _events(other) == [0]  # a paused peer holds up nobody else
        assert _events(paused) == []
        for i in range(1, 6):
            await quiet()
            deliver(aw, i)
        assert _events(other) == [0, 1, 2, 3, 4, 5]
        paused.gate.set()  # it drains: every event, once, in order
        await paused.wait_for(lambda: _events(paused) == [0, 1, 2, 3, 4, 5])
    finally:
        await end(aw, peers, tasks)


async def test_a_write_at_once_that_fails_ends_its_connection_not_the_delivery() -> None:
    aw, peers, tasks = await _connected(2)
    bad, good = peers
    try:
        bad.fail_after = _messages(bad)  # its next send raises (a bug in a send path)
        await quiet()
        deliver(aw, 0)  # raises nothing here, in the delivering call
        assert _events(good) == [0]
        await bad.wait_for(lambda: any(m["type"] == "websocket.close" for m in bad.sent))
        close = [m for m in bad.sent if m["type"] == "websocket.close"][-1]
        assert close["code"] == CloseCode.INTERNAL_ERROR
        await quiet()
        deliver(aw, 1)
        assert _events(good) == [0, 1]
    finally:
        await end(aw, peers, tasks)


async def test_pushes_while_a_batched_write_is_due_go_out_in_it_without_waking_it() -> None:
    """While a batched write is due (Link.due), the host's pushes skip the wake-up (its
    write takes them anyway); they go out in it, in order, and once it ran the next
    push wakes the writer again. A close asked for meanwhile still goes out after."""
    aw, peers, tasks = await _connected(2)
    peer, closing = peers
    by_user = {sess.user: sess.connection for sess in aw.host.sessions.values()}
    links = [by_user[f"u{n}"] for n in range(2)]  # (connected() issues u0, u1 in order)
    wakes = [0, 0]
    for n, link in enumerate(links):
        assert isinstance(link, Link) and link.on_wake is not None
        link.on_wake = _counting(link.on_wake, wakes, n)
    try:
        await quiet()
        deliver(aw, 0)  # written at once
        deliver(aw, 1)  # wrote in this iteration: batched, the write is due
        assert wakes == [2, 2] and all(isinstance(k, Link) and k.due for k in links)
        for i in range(2, 5):
            deliver(aw, i)
        assert wakes == [2, 2]  # not woken again: the due write takes these too
        for p in peers:
            await p.wait_for(lambda p=p: _events(p) == [0, 1, 2, 3, 4])
            assert _messages(p) == 3  # the hello, event 0, events 1-4
        assert not any(isinstance(k, Link) and k.due for k in links)
        await quiet()
        deliver(aw, 5)
        assert wakes == [3, 3]  # woken again, and written at once
        assert all(_events(p) == [0, 1, 2, 3, 4, 5] and _messages(p) == 4 for p in peers)
        deliver(aw, 6)  # batched: due again
        closing_link = links[1]
        assert isinstance(closing_link, Link) and closing_link.due
        closing_link.close(CloseCode.NORMAL, "bye")  # a close while due: wakes as ever
        deliver(aw, 7)
        await closing.wait_for(lambda: any(m["type"] == "websocket.close" for m in closing.sent))
        assert _events(closing) == [0, 1, 2, 3, 4, 5, 6, 7]  # everything, then the close
        assert closing.sent[-1]["type"] == "websocket.close"
        await peer.wait_for(lambda: _events(peer) == [0, 1, 2, 3, 4, 5, 6, 7])
    finally:
        await end(aw, peers, tasks)


def _counting(wake: Callable[[], None], counts: list[int], n: int) -> Callable[[], None]:
    def counted() -> None:
        counts[n] += 1
        wake()

    return counted


async def test_a_busy_rooms_batched_writes_leave_the_collector_nothing_per_connection() -> None:
    """Each connection's batched write is queued without making an object the cyclic
    collector tracks (a bound method per ``Batch.add`` was one per connection, alive
    until the round: a room of 1,000 busy every iteration set off a young collection
    every round, inside the fan-out; docs/perf/tick-round2.md)."""
    n = 200
    aw, peers, tasks = await _connected(n)
    try:
        await quiet()
        deliver(aw, 0)  # written at once
        gc.disable()  # (no collection may reset the counts while they are read)
        try:
            young = gc.get_count()[0]
            deliver(aw, 1)  # wrote in this iteration: every connection's write is batched
            added = gc.get_count()[0] - young
        finally:
            gc.enable()
        assert all(s.connection is not None and s.connection.due for s in _sessions(aw))
        assert added < n // 4, f"{added} tracked objects alive for {n} batched writes"
        for p in peers:
            await p.wait_for(lambda p=p: _events(p) == [0, 1])
    finally:
        await end(aw, peers, tasks)


def _sessions(aw: Anywire) -> list[Any]:
    return list(aw.host.sessions.values())
