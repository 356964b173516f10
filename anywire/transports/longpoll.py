"""HTTP long-polling transport: ``GET /anywire/poll``.

* ``GET ?ticket=T[&last=N]`` opens (or resumes) the session and answers at once with the
  hello and whatever is pending.
* ``GET ?ack=N`` with ``X-Anywire-Token`` is held up to ``poll_window``: 200 with a batch
  (every pending frame, up to ``max_batch``), or 204 when nothing came. ``ack`` is the
  client's last received sequence number; everything after it is sent again, so a lost
  response loses nothing.
* A newer poll of the same session answers the older one with 204 at once.
* 410 with a close frame: the session is gone or closed; the client stops polling.

Each poll request is the heartbeat: a session that sees no poll for poll_window +
ping_timeout is declared dead by the core (close code 4006).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError, RemoteProtocolError
from ..core.frames import Close
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
    query_uint,
    refuse_origin,
    send_json_error,
    session_sid,
    status_for,
)
from .traffic import Traffic

__all__ = ["INFO", "LongPollTransport"]

INFO = TransportInfo("longpoll", bidirectional=False, server_ping=False, binary=True)


class LongPollTransport:
    """ASGI app for the poll endpoint."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.traffic = Traffic()
        """Frames and bytes of every poll of this endpoint (metrics)."""
        self._current: dict[str, int] = {}  # sid -> id of the poll allowed to answer
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cors = self.host.cors_headers(scope)
        if await refuse_origin(self.host, scope, send):
            return
        params = query(scope)
        try:
            if "longpoll" not in self.host.settings.transports:
                raise ProtocolError("longpoll is disabled", 4507)
            if "ticket" in params:
                link = await self._open(params, peer_of(scope))
                await self._respond(send, link, cors)
                return
            sid = session_sid(self.host, scope)
            try:
                link = self.host.poll_started(sid, query_uint(params, "ack"))
            except RemoteProtocolError as exc:  # a bad ack: charged like any bad input
                self.host.reject(sid, exc)
                raise
        except ProtocolError as exc:
            log_refused("GET /poll", exc, scope)
            if exc.code == CloseCode.SESSION_UNKNOWN:
                await self.host.stranger(scope)
            await self._refuse(send, exc, cors)
            return
        await self._hold(scope, receive, send, link, cors)

    async def _open(self, params: dict[str, str], peer: tuple[str | None, str | None]) -> Link:
        first = first_frame(params)
        codec = self.host.codec(self.host.ticket_codec(first.ticket))
        link = Link(INFO, codec, self.traffic, peer)
        await self.host.attach(link, first)
        return link

    async def _hold(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        link: Link,
        cors: list[tuple[bytes, bytes]],
    ) -> None:
        assert link.sid is not None
        sid = link.sid
        poll_id = next(self._ids)
        self._current[sid] = poll_id
        link.wake()  # an older poll, if held, wakes up, sees it is stale and answers 204
        await asyncio.sleep(0)
        gone = asyncio.create_task(_disconnected(receive))
        try:
            loop = asyncio.get_running_loop()
            window = self.host.settings.poll_window
            # A granted interval sets the hold (server/heartbeats.py): shorter or longer.
            deadline = loop.time() + (window if link.hold is None else link.hold)
            while True:
                if self._current.get(sid) != poll_id:
                    await _empty(send, cors)
                    return
                if link.closing is not None or self.host.has_pending(link):
                    await self._respond(send, link, cors)
                    return
                remaining = deadline - loop.time()
                if remaining <= 0 or gone.done():
                    await _empty(send, cors)
                    return
                await link.wait(remaining)
        finally:
            gone.cancel()
            if self._current.get(sid) == poll_id:
                del self._current[sid]

    async def _respond(self, send: Send, link: Link, cors: list[tuple[bytes, bytes]]) -> None:
        frames = self.host.outgoing(link, self.host.settings.max_batch)
        if link.closing is not None:
            self.host.detach(link)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", link.codec.content_type.encode()),
                    (b"cache-control", b"no-store"),
                    *cors,
                ],
            }
        )
        body = link.codec.batch(frames)
        link.traffic.bytes_out += len(body)
        await send({"type": "http.response.body", "body": body})

    async def _refuse(
        self, send: Send, exc: ProtocolError, cors: list[tuple[bytes, bytes]]
    ) -> None:
        status = status_for(exc.code)
        if exc.code != CloseCode.BAD_REQUEST and status not in (403, 404, 413, 429):
            # The session is gone or not polling: the close frame says whether to resume.
            status = 410
            # The body is a close frame so the client knows whether to reconnect.
            codec = self.host.codec("json")
            body = codec.batch([codec.encode(Close(exc.code, exc.message).to_wire())])
            await send(
                {
                    "type": "http.response.start",
                    "status": 410,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"cache-control", b"no-store"),
                        *cors,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await send_json_error(send, status, exc, cors)


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _empty(send: Send, cors: list[tuple[bytes, bytes]]) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        await send({"type": "http.response.start", "status": 204, "headers": list(cors)})
        await send({"type": "http.response.body", "body": b""})
