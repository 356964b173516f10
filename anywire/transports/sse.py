"""Server-Sent Events transport: ``GET /anywire/sse?ticket=T[&last=N]`` (downstream only).

Built on sse-starlette's ``EventSourceResponse``. Each SSE event carries one JSON frame or
a JSON array of frames in ``data:``. The stream opens with a padding comment (some
buffering intermediaries release nothing until a few KB have passed) and keeps itself
alive with comment pings (as rarely as the session's granted heartbeat when that is
longer: the battery profile, core/pinginterval.py); the session's own ``ping`` frames
(answered by POST) detect dead peers. Upstream frames arrive through :mod:`.upstream`.

A stream runs in its request's task plus one disconnect listener, and the endpoint
watches for shutdown once for all its streams (:mod:`.ssestream`: sse-starlette's task
group of four per stream was most of an idle stream's memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio
from sse_starlette import ServerSentEvent

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError
from ..core.pinginterval import keepalive_period
from .base import (
    Host,
    Link,
    Receive,
    Scope,
    Send,
    TransportInfo,
    first_frame,
    log_refused,
    peer_of,
    query,
    refuse_origin,
    send_json_error,
    status_for,
)
from .eager import Batch, Ticks
from .ssestream import LEAN, LeanEventSourceResponse, exit_signal, keepalive
from .ssewrite import SSEWriter, chunk_writer, event_chunk
from .traffic import Traffic

__all__ = ["INFO", "SSETransport"]

INFO = TransportInfo("sse", bidirectional=False, server_ping=True, binary=False)

_PADDING = ":" + " " * 2048  # one comment, flushed before any event
_GRACE = 1.0  # seconds a stream has to send its close frame at shutdown


class SSETransport:
    """ASGI app for the event-stream endpoint."""

    def __init__(self, host: Host, keepalive: float = 15.0) -> None:
        self.host = host
        self.traffic = Traffic()
        """Frames and bytes of every stream of this endpoint (metrics)."""
        self.keepalive = keepalive
        self.shutdown_event = anyio.Event()
        self._links: dict[Link, asyncio.Task[Any]] = {}  # open streams and their tasks
        self._watcher: asyncio.Task[None] | None = None
        self.ticks = Ticks()
        self.batch = Batch()

    def reset(self) -> None:
        """Serve again after a shutdown (a fresh event; the old watcher has finished)."""
        if self.shutdown_event.is_set():
            self.shutdown_event = anyio.Event()
            self._watcher = None

    async def _watch_shutdown(self) -> None:
        # sse-starlette detects that the server exits (also under a plain uvicorn); one
        # watcher closes every stream, so idle streams need no listener of their own.
        if LEAN:
            await exit_signal()
            self.shutdown_event.set()
        else:  # sse-starlette's own task group per stream sets the event
            await self.shutdown_event.wait()
        for link in list(self._links):
            link.close(CloseCode.SHUTDOWN, "server shutting down")
        if LEAN:
            # What sse-starlette's grace period did: a stream that could not send its
            # close in time (a peer not reading) is cancelled.
            streams = set(self._links.values())
            if streams:
                _, late = await asyncio.wait(streams, timeout=_GRACE)
                for task in late:
                    task.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cors = self.host.cors_headers(scope)
        if await refuse_origin(self.host, scope, send):
            return
        params = query(scope)
        try:
            if "sse" not in self.host.settings.transports:
                raise ProtocolError("sse is disabled", 4507)
            first = first_frame(params)
            link = Link(INFO, self.host.codec("json"), self.traffic, peer_of(scope))
            await self.host.attach(link, first)
        except ProtocolError as exc:
            log_refused("GET /sse", exc, scope)
            if exc.code == CloseCode.SESSION_UNKNOWN:
                await self.host.stranger(scope)
            await send_json_error(send, status_for(exc.code), exc, cors)
            return
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_shutdown())
        task = asyncio.current_task()
        assert task is not None
        self._links[link] = task
        headers = {k.decode(): v.decode() for k, v in cors}
        headers["Cache-Control"] = "no-store"
        period = keepalive_period(self.host.settings, self.keepalive, link.interval)
        self.ticks.check_loop()
        # The direct write only on the lean path: sse-starlette's own task group has a
        # ping task writing beside the stream.
        writer = SSEWriter(
            self.host,
            link,
            chunk_writer(scope) if LEAN else None,
            self.ticks,
            self.batch,
            asyncio.get_running_loop(),
        )
        link.on_wake = writer.wake
        response = LeanEventSourceResponse(
            self._events(link, writer, period if LEAN else 0.0),
            headers=headers,
            # The lean path: keepalives come from _events, no ping task per stream.
            ping=0 if LEAN else period,
            send_timeout=self.host.settings.ping_interval + self.host.settings.ping_timeout,
            shutdown_event=self.shutdown_event,
            shutdown_grace_period=1.0,
        )
        try:
            await response(scope, receive, send)
        finally:
            writer.ended = True
            link.on_wake = None
            self._links.pop(link, None)
            self.host.detach(link)

    async def _events(self, link: Link, writer: SSEWriter, period: float) -> AsyncIterator[Any]:
        """The stream's events; with ``period`` > 0 also a keepalive comment every
        ``period`` seconds, events or not (the schedule sse-starlette's ping task kept).

        The keepalive is a timer that rouses the task, armed once per period: a timeout
        on every wait would cost a timer per event on the fan-out path. While the task
        is parked in ``writer.wait()``, pushes are written by ``writer`` itself (in the
        pusher's call, where the server offers a direct write: :mod:`.ssewrite`)."""
        yield ServerSentEvent(comment=_PADDING[1:])
        limit = self.host.settings.max_batch
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        if period > 0:
            timer = loop.call_later(period, writer.keepalive_due)
        try:
            while True:
                if writer.due:
                    writer.due = False
                    timer = loop.call_later(period, writer.keepalive_due)
                    yield keepalive()
                carry = writer.take_carry()
                if carry is not None:  # a push the direct write could not take: first
                    yield carry
                # Whether this write carries the close frame: a close asked for while
                # the previous write was stalled (a peer not reading) still goes out,
                # after it.
                closing = link.closing
                frames = self.host.outgoing(link, limit)
                if frames:
                    yield event_chunk(link, frames)
                if closing is not None:
                    return
                if self.host.has_pending(link):
                    await asyncio.sleep(0)  # a backlog: let other streams have the loop
                else:
                    await writer.wait()
        finally:
            writer.ended = True
            if timer is not None:
                timer.cancel()
