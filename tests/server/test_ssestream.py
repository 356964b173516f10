"""LeanEventSourceResponse against a queue-based ASGI harness (issue #17): the stream in
the request's task, the disconnect listener as the one extra task, and what ends what."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from anywire.transports.ssestream import LEAN, LeanEventSourceResponse, keepalive

SCOPE = {"type": "http", "method": "GET", "path": "/anywire/sse", "headers": []}

pytestmark = pytest.mark.skipif(not LEAN, reason="this sse-starlette takes its own path")


class Peer:
    """The client side: messages for ``receive`` in, everything sent recorded."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.fail: BaseException | None = None
        self.got_body = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        message = await self.inbox.get()
        if self.fail is not None:
            raise self.fail
        return message

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.got_body.set()


class Events:
    """An endless event stream that records whether its cleanup ran."""

    def __init__(self) -> None:
        self.more = asyncio.Event()
        self.closed = False

    async def __call__(self) -> AsyncIterator[Any]:
        try:
            yield b"data: 1\r\n\r\n"
            await self.more.wait()
            yield b"data: 2\r\n\r\n"
        finally:
            self.closed = True


async def _started(peer: Peer, events: Events) -> asyncio.Task[None]:
    response = LeanEventSourceResponse(events(), ping=0)
    task = asyncio.create_task(response(SCOPE, peer.receive, peer.send))
    async with asyncio.timeout(2):
        await peer.got_body.wait()
    return task


async def _tasks_back_to(count: int) -> None:
    """The listener's own end runs a loop iteration after the stream's (bounded)."""
    async with asyncio.timeout(1):
        while len(asyncio.all_tasks()) > count:
            await asyncio.sleep(0)


async def test_a_client_that_leaves_ends_a_waiting_stream_and_its_listener() -> None:
    peer, events = Peer(), Events()
    before = len(asyncio.all_tasks())
    task = await _started(peer, events)
    assert len(asyncio.all_tasks()) == before + 2  # the stream and the listener
    peer.inbox.put_nowait({"type": "http.disconnect"})
    async with asyncio.timeout(2):
        await task  # returns, not cancelled: the disconnect is business as usual
    assert events.closed
    await _tasks_back_to(before)
    # No closing body for a peer that left (sse-starlette's rule).
    assert not any(m.get("more_body") is False for m in peer.sent)


async def test_a_stream_that_ends_sends_the_closing_body_and_stops_the_listener() -> None:
    peer, events = Peer(), Events()
    before = len(asyncio.all_tasks())
    task = await _started(peer, events)
    events.more.set()
    async with asyncio.timeout(2):
        await task
    bodies = [m for m in peer.sent if m["type"] == "http.response.body"]
    assert [m["body"] for m in bodies] == [b"data: 1\r\n\r\n", b"data: 2\r\n\r\n", b""]
    assert bodies[-1]["more_body"] is False
    await _tasks_back_to(before)


async def test_a_failing_receive_ends_the_stream_with_its_error() -> None:
    peer, events = Peer(), Events()
    task = await _started(peer, events)
    peer.fail = RuntimeError("receive broke")
    peer.inbox.put_nowait({"type": "http.request"})
    async with asyncio.timeout(2):
        with pytest.raises(RuntimeError, match="receive broke"):
            await task
    assert events.closed


async def test_a_cancellation_from_outside_still_cancels() -> None:
    peer, events = Peer(), Events()
    task = await _started(peer, events)
    task.cancel()
    async with asyncio.timeout(2):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert events.closed


def test_the_keepalive_is_sse_starlettes_ping_comment() -> None:
    assert keepalive().encode().startswith(b": ping - ")
