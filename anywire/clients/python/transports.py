"""Client transports. Each presents one shape to the client logic, which never branches
on the concrete class: ``open`` (returns the hello), ``queue`` (frames to send, in order),
``recv`` (the next frames; raises :class:`TransportClosed`), ``abort`` and ``close``.

Sending goes through one queue and one sender task per transport, so frames leave in the
order they were queued and an HTTP transport keeps exactly one POST in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as WSClosed

from ...core.codec import Codec
from ...core.frames import Close, Connect, Frame, Hello, Resume, parse_frame

__all__ = [
    "ClientTransport",
    "LongPollTransport",
    "SSETransport",
    "TransportClosed",
    "WebSocketTransport",
]


class TransportClosed(Exception):
    """The transport ended; ``code`` is the close code if the server gave one."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"transport closed ({code}) {reason}")
        self.code = code
        self.reason = reason


def _frames(codec: Codec, data: bytes | str) -> list[Frame]:
    obj = codec.decode(data)
    return [parse_frame(item) for item in (obj if isinstance(obj, list) else [obj])]


class ClientTransport:
    """Shared machinery: the ordered send queue, the sender task and the inbox."""

    name = "?"
    #: Whether receiving is acknowledged by the transport itself (long-poll ``ack=``).
    acks_in_requests = False

    def __init__(
        self,
        base: str,
        offer: dict[str, Any],
        neg: dict[str, Any],
        codec: Codec,
        http: httpx.AsyncClient,
        headers: dict[str, str],
    ) -> None:
        self.base = base
        self.offer = offer
        self.neg = neg
        self.codec = codec
        self.http = http
        self.headers = headers
        self.inbox: asyncio.Queue[list[Frame] | TransportClosed] = asyncio.Queue()
        self._outbox: list[Frame] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pushback: list[Frame] = []
        self.closed = False

    async def open(self, last: int | None, timeout: float) -> Hello:
        """Connect (``last`` set: resume from it) and return the server's hello."""
        raise NotImplementedError

    def _first(self, last: int | None) -> Connect | Resume:
        ticket = str(self.neg["ticket"])
        return Connect(ticket) if last is None else Resume(ticket, last)

    def queue(self, frames: list[Frame]) -> None:
        """Send ``frames`` after everything queued before them."""
        if frames and not self.closed:
            self._outbox.extend(frames)
            self._wake.set()

    async def recv(self, timeout: float | None) -> list[Frame]:
        """The next frames. Raises TransportClosed, or TimeoutError when the server has
        been silent for ``timeout`` seconds (a dead peer)."""
        if self._pushback:
            frames, self._pushback = self._pushback, []
            return frames
        async with asyncio.timeout(timeout):
            item = await self.inbox.get()
        if isinstance(item, TransportClosed):
            self.inbox.put_nowait(item)  # stays closed for later readers
            raise item
        return item

    def _deliver(self, frames: list[Frame]) -> None:
        for frame in frames:
            if isinstance(frame, Close):
                self.inbox.put_nowait([frame])
                self._end(TransportClosed(frame.c, frame.m))
                return
        self.inbox.put_nowait(frames)

    def _end(self, exc: TransportClosed) -> None:
        if not self.closed:
            self.closed = True
            self.inbox.put_nowait(exc)

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _sender(self) -> None:
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox and not self.closed:
                    batch, self._outbox = self._outbox[:100], self._outbox[100:]
                    await self._send_batch(batch)
        except (OSError, httpx.HTTPError, WSClosed) as exc:
            self._end(TransportClosed(None, f"send failed: {exc}"))

    async def _send_batch(self, frames: list[Frame]) -> None:
        raise NotImplementedError

    async def _post(self, frames: list[Frame], codec: Codec) -> None:
        encoded = [codec.encode(f.to_wire()) for f in frames]
        body = encoded[0] if len(encoded) == 1 else codec.batch(encoded)
        r = await self.http.post(
            self.base + self.neg["send_url"],
            content=body,
            headers={
                **self.headers,
                "Content-Type": codec.content_type,
                "X-Anywire-Token": self.neg["token"],
            },
        )
        if r.status_code == 410:
            self._end(TransportClosed(_code(r, 4007), "session unknown"))
        elif r.status_code >= 400:
            self._end(TransportClosed(_code(r, None), f"send refused: HTTP {r.status_code}"))

    def abort(self) -> None:
        """Drop the connection at once, telling the server nothing (a network failure)."""
        self._end(TransportClosed(None, "aborted"))
        for task in self._tasks:
            task.cancel()

    async def close(self) -> None:
        """Stop every task of this transport."""
        self.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _code(r: httpx.Response, default: int | None) -> int | None:
    with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
        body = r.json()
        if isinstance(body, list):
            return int(body[0]["c"])
        return int(body["code"])
    return default


class WebSocketTransport(ClientTransport):
    """WebSocket: frames both ways on one connection."""

    name = "websocket"

    async def open(self, last: int | None, timeout: float) -> Hello:
        url = self.base.replace("http", "ws", 1) + self.offer["url"]
        self.ws: ClientConnection = await connect(
            url,
            additional_headers=self.headers,
            open_timeout=timeout,
            max_size=16 * 2**20,
            ping_interval=None,
            compression=None,
        )
        first = self.codec.encode(self._first(last).to_wire())
        await self.ws.send(first if self.codec.binary else first.decode())
        self._spawn(self._reader())
        self._spawn(self._sender())
        return await _await_hello(self, timeout)

    async def _reader(self) -> None:
        try:
            async for message in self.ws:
                self._deliver(_frames(self.codec, message))
        except WSClosed:
            pass
        code = self.ws.close_code
        self._end(TransportClosed(code, self.ws.close_reason or ""))

    async def _send_batch(self, frames: list[Frame]) -> None:
        encoded = [self.codec.encode(f.to_wire()) for f in frames]
        body = encoded[0] if len(encoded) == 1 else self.codec.batch(encoded)
        await self.ws.send(body if self.codec.binary else body.decode())

    def abort(self) -> None:
        super().abort()
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.transport.abort()  # no close handshake: the server sees a dead socket

    async def close(self) -> None:
        await super().close()
        ws = getattr(self, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


class SSETransport(ClientTransport):
    """Server-Sent Events downstream (always JSON), POST upstream."""

    name = "sse"

    async def open(self, last: int | None, timeout: float) -> Hello:
        first = self._first(last)
        params = {"ticket": first.ticket}
        if isinstance(first, Resume):
            params["last"] = str(first.last)
        self._spawn(self._reader(self.base + self.offer["url"] + "?" + urlencode(params)))
        self._spawn(self._sender())
        return await _await_hello(self, timeout)

    async def _reader(self, url: str) -> None:
        try:
            async with self.http.stream(
                "GET", url, headers=self.headers, timeout=httpx.Timeout(10.0, read=None)
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._end(
                        TransportClosed(_code(response, None), f"HTTP {response.status_code}")
                    )
                    return
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    elif not line and data:
                        self._deliver(_frames(self.codec, "\n".join(data)))
                        data = []
        except (httpx.HTTPError, OSError) as exc:
            self._end(TransportClosed(None, f"stream failed: {exc}"))
            return
        self._end(TransportClosed(None, "stream ended"))

    async def _send_batch(self, frames: list[Frame]) -> None:
        await self._post(frames, self.codec)


class LongPollTransport(ClientTransport):
    """Long-polling downstream, POST upstream; each poll acknowledges what came before."""

    name = "longpoll"
    acks_in_requests = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0  # set by the client: last sequence number it has

    async def open(self, last: int | None, timeout: float) -> Hello:
        first = self._first(last)
        params = {"ticket": first.ticket}
        if isinstance(first, Resume):
            params["last"] = str(first.last)
        r = await self.http.get(
            self.base + self.offer["url"], params=params, headers=self.headers, timeout=timeout
        )
        if r.status_code != 200:
            raise TransportClosed(_code(r, None), f"HTTP {r.status_code}")
        self._deliver(_frames(self.codec, r.content))
        self._spawn(self._poller())
        self._spawn(self._sender())
        return await _await_hello(self, timeout)

    async def _poller(self) -> None:
        window = self.neg["poll_window"] / 1000 + self.neg["ping_timeout"] / 1000
        try:
            while not self.closed:
                r = await self.http.get(
                    self.base + self.offer["url"],
                    params={"ack": self.received},
                    headers={**self.headers, "X-Anywire-Token": self.neg["token"]},
                    timeout=httpx.Timeout(10.0, read=window),
                )
                if r.status_code == 204:
                    continue
                if r.status_code != 200:
                    self._end(TransportClosed(_code(r, None), f"HTTP {r.status_code}"))
                    return
                self._deliver(_frames(self.codec, r.content))
        except (httpx.HTTPError, OSError) as exc:
            self._end(TransportClosed(None, f"poll failed: {exc}"))

    async def _send_batch(self, frames: list[Frame]) -> None:
        await self._post(frames, self.codec)


async def _await_hello(transport: ClientTransport, timeout: float) -> Hello:
    frames = await transport.recv(timeout)
    hello = frames[0]
    if not isinstance(hello, Hello):
        raise TransportClosed(None, f"expected hello, got {hello.type}")
    transport._pushback = frames[1:]
    return hello


TRANSPORT_CLASSES: dict[str, type[ClientTransport]] = {
    "websocket": WebSocketTransport,
    "sse": SSETransport,
    "longpoll": LongPollTransport,
}
