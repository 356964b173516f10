"""Writing SSE events at once, in the pusher's call, where the server offers it (#17).

Through sse-starlette every event took: a wake-up of the stream's task (one loop
iteration later), the stream's generator, an anyio cancel scope around each ASGI
``send()`` (its per-send timeout: a timer armed and cancelled per event) and uvicorn's
``send()`` coroutine. With 1,000 streams in a room the last one was written a whole
round of task switches after the first (docs/perf/sse.md).

The server's own HTTP protocol (``anywire.server.httpdirect``, what ``anywire serve``
runs) puts a :data:`ChunkWrite` in the request's scope (``scope["extensions"]
["anywire.chunk"]``): it writes bytes as the next piece of the response body now and
says so, or returns False when anything stands in the way (the response not started or
over, the socket's buffer full, the peer gone). :class:`SSEWriter` is the stream's
``Link.on_wake``: while the stream's task is parked with nothing to write, a push is
written in the pusher's call (the adaptive rule of the WebSocket writer: at once when
the connection wrote nothing in this loop iteration or the one before, else batched
one iteration later with whatever else comes, :class:`.eager.Batch`). Anything else (a
keepalive or a close due, a write declined, a backlog of more than one message) wakes
the task, which goes on through ``send()`` as before; a write declined hands the task
the chunk it could not write, first. Under another ASGI server nothing changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from .base import Host, Link
from .eager import Batch, Ticks

__all__ = ["CHUNK_KEY", "ChunkWrite", "SSEWriter", "chunk_writer", "event_chunk"]

CHUNK_KEY = "anywire.chunk"
"""The key of the direct chunk writer in an HTTP request scope's ``extensions``."""

ChunkWrite = Callable[[bytes], bool]
"""``write(data)``: ``data`` as the next piece of the response body, written now
(True), or nothing done (False: use ``send()``)."""


def chunk_writer(scope: Mapping[str, Any]) -> ChunkWrite | None:
    """The request's direct chunk writer, if its server offers one."""
    found = (scope.get("extensions") or {}).get(CHUNK_KEY)
    return found if callable(found) else None


def event_chunk(link: Link, frames: list[bytes]) -> bytes:
    """One SSE event carrying ``frames`` (one frame, or a batch of them), counted in the
    link's traffic. Compact JSON holds no line breaks, so one data line is the whole
    event (no decode, split and re-encode)."""
    body = frames[0] if len(frames) == 1 else link.codec.batch(frames)
    link.traffic.bytes_out += len(body)
    return b"data: " + body + b"\r\n\r\n"


class SSEWriter:
    """A stream's writer outside its task; see the module docstring.

    The stream's task calls :meth:`wait` when it has written everything; from then
    until it is woken, :meth:`wake` (the link's ``on_wake``) may write. While the task
    runs, a push only reaches it through ``Host.has_pending``, which it checks before
    parking again: so the two never write at once and the order holds.
    """

    __slots__ = (
        "_batched", "_waiter", "batch", "carry", "due", "ended", "host", "link", "loop",
        "parked", "ticks", "turn", "write", "wrote",
    )  # fmt: skip

    def __init__(
        self,
        host: Host,
        link: Link,
        write: ChunkWrite | None,
        ticks: Ticks,
        batch: Batch,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.host = host
        self.link = link
        self.write = write
        self.ticks = ticks
        self.batch = batch
        self.loop = loop
        self.parked = False  # the task waits in wait(): writing is this object's
        self.carry: bytes | None = None  # taken from the session, not written: the task's
        self.due = False  # a keepalive is due: the task writes it
        self.ended = False  # the stream is over: write nothing more
        self.wrote = -1  # the loop iteration (ticks.n) of the last direct write
        self._batched = False  # a batched write is due (Batch round)
        self._waiter: asyncio.Future[None] | None = None
        # Bound once, not per Batch.add (a tracked object per round: websocket._Writer).
        self.turn = self._batch_turn

    async def wait(self) -> None:
        """Park the stream's task until it has something to write (a push that could not
        be written here, a keepalive, a close)."""
        if self.due or self.carry is not None or self.ended:
            return
        fut = self.loop.create_future()
        self._waiter = fut
        self.parked = True
        try:
            await fut
        finally:
            self.parked = False
            self._waiter = None

    def take_carry(self) -> bytes | None:
        """The chunk a declined direct write left for the task (once)."""
        carry, self.carry = self.carry, None
        return carry

    def keepalive_due(self) -> None:
        """The keepalive timer fired: the task writes the comment."""
        self.due = True
        self.rouse()

    def rouse(self) -> None:
        """Hand the writing back to the stream's task."""
        self.parked = False
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_result(None)

    def wake(self) -> None:
        """Output is waiting (``Link.on_wake``): write it now, batch it, or rouse the
        task (see the module docstring)."""
        if not self.parked or self._batched:
            return  # the task runs and looks again before parking; or a batch is due
        if self.write is None or self.link.closing is not None:
            self.rouse()
            return
        ticks = self.ticks
        now = ticks.n if ticks.armed else ticks.now()
        ticks.asked = True
        if self.wrote < now - 1:
            self._write(now)  # nothing to coalesce with: write in this very call
        else:
            # Written in this iteration (a burst) or the one before (a busy room): one
            # write for whatever comes until the batch's turn. Until then the host's
            # pushes need not wake the link (Link.due: Link.wake and this method, two
            # calls per delivery of a busy room, as for the WebSocket writer).
            self._batched = True
            self.link.due = True
            self.batch.add(self.loop, self.turn)

    def _batch_turn(self) -> None:
        self._batched = False
        self.link.due = False
        if self.parked and not self.ended:
            self._write(self.ticks.now())

    def _write(self, now: int) -> None:
        """One message written directly (the task stays parked), or the task roused."""
        host, link = self.host, self.link
        if link.closing is not None:
            self.rouse()
            return
        write = self.write
        assert write is not None
        try:
            frames = host.outgoing(link, host.settings.max_batch)
        except Exception:
            self.rouse()  # the task meets the same failure and ends the stream (logged)
            return
        if frames:
            chunk = event_chunk(link, frames)
            self.wrote = now
            try:
                written = write(chunk)
            except Exception:
                written = False
            if not written:
                self.carry = chunk  # the socket's buffer is full or the stream ends
                self.rouse()
                return
        # (link.more: has_pending() as it stands right after outgoing(), without its
        # calls; nothing ran in between that could push.)
        if link.closing is not None or link.more:
            self.rouse()  # a close, or more than one message: the task goes on
