"""The HTTP protocol ``anywire serve`` runs, with a direct write of response chunks for
the SSE transport (issue #17).

An SSE event through ASGI is ``await send({"type": "http.response.body", "body": ...,
"more_body": True})``: a message dict, sse-starlette's per-send timeout (an anyio cancel
scope, a timer armed and cancelled per event) and uvicorn's ``send()`` coroutine, all
in the stream's task, woken one loop iteration after the push. :class:`DirectHttpTools`
(:class:`.httplimits.LimitedHttpTools`, the limits unchanged) puts a
:data:`anywire.transports.ssewrite.ChunkWrite` in every request's scope
(``scope["extensions"]["anywire.chunk"]``): what uvicorn's ``send()`` does for one more
piece of a chunked body, done now and True, or nothing done and False whenever
``send()`` would have waited or refused (response not started, over, or not chunked;
the socket's buffer full; the peer gone). The transport then takes the ASGI path.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from ..transports.ssewrite import CHUNK_KEY
from .httplimits import HttpLimits, LimitedHttpTools

__all__ = ["ChunkWriter", "DirectHttpTools", "protocol_class"]


class ChunkWriter:
    """The direct chunk write of one request's response (bound to its cycle, so a stream
    that outlives its request can never write into the next response of the
    connection)."""

    __slots__ = ("cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self.cycle = cycle

    def __call__(self, data: bytes) -> bool:
        """:data:`~anywire.transports.ssewrite.ChunkWrite`: ``data`` (not empty) as the
        next chunk of the response body, or False with nothing done."""
        cycle = self.cycle
        if (
            not cycle.response_started
            or cycle.response_complete
            or cycle.disconnected
            or not cycle.chunked_encoding  # (HEAD answers are not chunked either)
            or cycle.flow.write_paused
            or not data
        ):
            return False
        transport = cycle.transport
        if transport.is_closing():
            return False
        # What uvicorn writes for {"body": data, "more_body": True}, in one piece.
        transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return True


class DirectHttpTools(LimitedHttpTools):
    """:class:`.httplimits.LimitedHttpTools` offering :class:`ChunkWriter` to the app."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle: Any = self.cycle
        # (Not for an upgrade, which made no cycle of its own.)
        if cycle is not None and cycle.scope is self.scope:
            # Added to what the scope may already offer (another protocol layer's).
            self.scope.setdefault("extensions", {})[CHUNK_KEY] = ChunkWriter(cycle)


def protocol_class(limits: HttpLimits) -> type[DirectHttpTools]:
    """:class:`DirectHttpTools` bound to ``limits`` (uvicorn builds one per connection)."""
    return type("DirectHttpTools", (DirectHttpTools,), {"limits": limits})
