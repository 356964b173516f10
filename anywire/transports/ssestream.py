"""One SSE stream on sse-starlette with one task besides the request's own (issue #17).

sse-starlette's ``EventSourceResponse`` runs every stream in an anyio task group of four
tasks: the stream, a ping timer, a shutdown listener and a disconnect listener. Each
anyio task carries its own task, cancel scope, finish event and wrapper coroutine, so an
idle stream cost ~44 KB against ~17 KB for a WebSocket. :class:`LeanEventSourceResponse`
keeps sse-starlette's response (headers, encoding, per-send timeout, closing body,
disconnect handling: its own methods) and changes who runs them:

* the stream runs in the request's task, and the disconnect listener is the one extra
  task; a disconnect cancels the stream, as the task group did;
* keepalive comments come from the stream's own iterator (:func:`keepalive`), on the
  same fixed schedule sse-starlette's ping task kept (``ping=0`` turns that task off);
* the shutdown signal is awaited once per endpoint (:func:`exit_signal`), not once per
  stream; the endpoint then closes its streams itself.

Should a future sse-starlette lack a method this relies on, the response falls back to
sse-starlette's own ``__call__`` (the task group), which is correct, only heavier.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from .base import Receive, Scope, Send

__all__ = ["LEAN", "LeanEventSourceResponse", "exit_signal", "keepalive"]

_NEEDED = (
    "_stream_response",
    "_listen_for_disconnect",
    "_listen_for_exit_signal",
    "_send_with_timeout",  # _finish
)
LEAN = all(hasattr(EventSourceResponse, name) for name in _NEEDED)
"""Whether this sse-starlette has what the lean path uses (else: its own task group)."""


class LeanEventSourceResponse(EventSourceResponse):
    """``EventSourceResponse`` run with one extra task; see the module docstring. Create
    it with ``ping=0`` and let the iterator yield keepalives (:func:`keepalive`)."""

    _streaming = False  # the stream runs in the request's task (the lean path)
    _ended_by: BaseException | bool | None = None  # the listener ended it (its failure)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not LEAN or scope["type"] != "http" or scope.get("method", "GET").upper() == "HEAD":
            await super().__call__(scope, receive, send)
            return
        stream = asyncio.current_task()
        assert stream is not None
        self._streaming = True
        listener = asyncio.create_task(self._listen_for_disconnect(receive))
        listener.add_done_callback(lambda done: self._listener_ended(stream, done))
        try:
            await self._stream_response(send)
        except asyncio.CancelledError:
            # The listener ended the stream the way the task group did: by cancelling
            # it. A cancellation from elsewhere as well goes on up.
            if self._ended_by is None or stream.uncancel() > 0:
                raise
            if isinstance(self._ended_by, BaseException):
                raise self._ended_by from None  # the listener failed: as the group raised
        finally:
            self._streaming = False
            self.active = False
            listener.cancel()
        await self._finish(send)

    def _listener_ended(self, stream: asyncio.Task[Any], listener: asyncio.Task[Any]) -> None:
        """The disconnect listener ended while the stream runs: the client left (or its
        receive failed), so stop the stream, which may be waiting for its next event
        for a long time. (Cancelled by :meth:`__call__` after the stream: nothing.)"""
        if listener.cancelled() or not self._streaming:
            return
        self._streaming = False
        self._ended_by = listener.exception() or True
        stream.cancel()

    async def _finish(self, send: Send) -> None:
        """What sse-starlette does after its task group: the closing empty body when the
        stream was cut short (not for a peer that left or a send that never returned),
        then the background task."""
        if (
            self._response_started
            and not self._response_complete
            and not self._client_disconnected
            and not self._send_interrupted
        ):
            try:
                await self._send_with_timeout(
                    send, {"type": "http.response.body", "body": b"", "more_body": False}
                )
                self._response_complete = True
            except OSError:
                pass  # the peer is gone (SendTimeoutError is an OSError too)
        if self.background is not None:
            await self.background()


async def exit_signal() -> None:
    """Return when the server is shutting down, as sse-starlette detects it (its own
    shared watcher of uvicorn's exit flag); awaited once per endpoint."""
    await EventSourceResponse._listen_for_exit_signal()


def keepalive() -> ServerSentEvent:
    """The comment sse-starlette's ping task sends (the stream's iterator yields it)."""
    return ServerSentEvent(comment=f"ping - {datetime.now(UTC)}")
