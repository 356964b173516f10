"""WebSocket transport: frames both ways on one connection (``websockets`` asyncio API)."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ...core.errors import RemoteProtocolError
from ...core.frames import Connect, Hello, Resume, ResumeDirect
from .proxies import ws_proxy
from .transport import ClientTransport, TransportClosed
from .wire import decode_frames, error_code, ws_url

__all__ = ["WebSocketTransport"]

# Server messages may be batches of up to max_batch frames: allow well above the upstream
# max_frame_size, but keep a bound so a broken server cannot exhaust memory.
_MAX_MESSAGE = 16 * 1024 * 1024


class WebSocketTransport(ClientTransport):
    """WebSocket: text messages for JSON, binary for MessagePack."""

    name = "websocket"
    _ws: ClientConnection | None = None

    async def resume_directly(self, first: ResumeDirect) -> Hello:
        """:meth:`open` with a resume without negotiate (protocol section 2.2.1), which
        only a WebSocket carries (SSE and long-poll resume through negotiate): the same
        upgrade, ``first`` as the first message, and the server's hello."""
        await self._connect(first)
        return await self._hello()

    async def _connect(self, first: Connect | Resume | ResumeDirect) -> None:
        try:
            self._ws = await connect(
                ws_url(self.base_url, self.path),
                additional_headers=self.headers,  # Origin, cookies... for the upgrade too
                open_timeout=None,  # the client bounds the whole attempt (hello included)
                ping_interval=None,  # anywire's own ping frames detect dead peers
                close_timeout=1.0,
                # Offered only when asked for: the server negotiates it only when its
                # operator turned it on, and it costs CPU and memory on both ends.
                compression="deflate" if self.deflate else None,
                max_size=_MAX_MESSAGE,
                proxy=ws_proxy(self.proxy),  # a CONNECT tunnel (proxies.py)
            )
        except InvalidStatus as exc:
            # A refused upgrade. Only the server's own error body says "not allowed"
            # (stop); a bare status may come from a proxy that breaks WebSocket (a plain
            # 403 is common there), so it means "fall back" like any transport failure.
            status = exc.response.status_code
            code = error_code(bytes(exc.response.body or b""))
            raise TransportClosed(code, f"upgrade refused: HTTP {status}", "upgrade") from exc
        except WebSocketException as exc:
            raise TransportClosed(None, f"upgrade failed: {exc!r}", "upgrade") from exc
        await self._write(self.codec.encode(first.to_wire()))
        self._spawn(self._reader())

    async def _reader(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for message in ws:
                self._deliver(decode_frames(self.codec, message), len(message))
        except ConnectionClosed as exc:
            # Iteration raises for any close code but 1000/1001: the code is the news.
            self._end(_closed(exc))
            return
        except (OSError, RemoteProtocolError, WebSocketException) as exc:
            # A malformed frame or a broken socket: this connection is done; resuming on
            # a new one is the cure either way.
            self._end(TransportClosed(None, f"receive failed: {exc!r}"))
            return
        self._end(TransportClosed(ws.close_code, ws.close_reason or ""))

    async def _write(self, body: bytes) -> None:
        assert self._ws is not None
        try:
            await self._ws.send(body if self.codec.binary else body.decode("utf-8"))
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    def abort(self) -> None:
        super().abort()
        if self._ws is not None:
            # Drop the TCP connection without a closing handshake: to the server this
            # looks exactly like a network failure.
            self._ws.transport.abort()


def _closed(exc: ConnectionClosed) -> TransportClosed:
    """The server's close code and reason (1006 if the connection just broke)."""
    if exc.rcvd is not None:
        return TransportClosed(exc.rcvd.code, exc.rcvd.reason)
    return TransportClosed(1006, "connection lost")
