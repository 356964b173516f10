"""Upstream for the HTTP transports: ``POST /anywire/send`` (SSE and long-poll).

The body is one frame or a batch in the codec named by Content-Type, authorized by the
session token (``X-Anywire-Token`` header, or ``token`` query parameter). Frames before an
invalid one are processed; the answer then names the error. Clients keep one POST in
flight so frames arrive in order.
"""

from __future__ import annotations

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError, RemoteProtocolError
from ..core.frames import Frame
from .base import (
    Host,
    Receive,
    Scope,
    Send,
    decode_frames,
    header,
    log_refused,
    read_body,
    refuse_origin,
    send_json_error,
    session_sid,
    status_for,
)

__all__ = ["SendEndpoint"]


class SendEndpoint:
    """ASGI app for the upstream POST endpoint."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cors = self.host.cors_headers(scope)
        if await refuse_origin(self.host, scope, send):
            return
        settings = self.host.settings
        try:
            sid = session_sid(self.host, scope)
            # A client past its budget is refused before its body is read or decoded.
            self.host.charge(sid, 0, "requests")
            content_type = header(scope, b"content-type") or ""
            codec = self.host.codec("msgpack" if "msgpack" in content_type else "json")
            frames: list[Frame] = []
            body = b""
            error: RemoteProtocolError | None = None
            receipt: int | None = None
            try:
                body = await read_body(receive, settings.max_frame_size)
            except RemoteProtocolError as exc:  # too large: charged like any bad input
                error = exc
            else:
                receipt = codec.decode_rx(body)  # a lone rx (the commonest): no frame
                if receipt is None:
                    frames, error = decode_frames(codec, body, settings.max_batch)
            if receipt is not None:
                self.host.receipt(sid, receipt, len(body))
            elif frames or error is None:  # an empty batch is charged too
                self.host.feed(sid, frames, len(body))
            if error is not None:
                self.host.reject(sid, error)
                raise error
            # The 204 tells the client its frames are safe here (it forgets them): an
            # answer still on its way to another node must have left first.
            await self.host.settled(sid)
        except ConnectionResetError:
            return
        except ProtocolError as exc:
            log_refused("POST /send", exc, scope)
            if exc.code == CloseCode.SESSION_UNKNOWN:
                await self.host.stranger(scope)
            await send_json_error(send, status_for(exc.code), exc, cors)
            return
        await send({"type": "http.response.start", "status": 204, "headers": [*cors]})
        await send({"type": "http.response.body", "body": b""})
