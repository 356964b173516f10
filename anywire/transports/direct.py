"""Writing a WebSocket message without the ASGI ``send()`` coroutine, where the server
offers it.

An ASGI WebSocket write is ``await send({"type": "websocket.send", "text": str})``: a
message dict, a coroutine, uvicorn's checks of the handshake state, a wait on the
"writable" flag, and, for text, our UTF-8 bytes decoded to ``str`` only for uvicorn to
encode them again. Per delivery that was about a tenth of the server's instructions
(docs/perf/cpu.md). The server's own protocol (``anywire.server.wsprotocol``, what
``anywire serve`` runs) puts a :data:`DirectWrite` in the connection's scope
(``scope["extensions"]["anywire.write"]``): it writes an already encoded message at once
and says so, or returns False when anything stands in the way (the socket's buffer is
full, the connection is closing), and the transport then takes the ASGI path, which
waits or fails as ASGI says. Under another ASGI server nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DIRECT_KEY", "DirectWrite", "direct_writer"]

DIRECT_KEY = "anywire.write"
"""The key of the direct writer in the scope's ``extensions``."""

DirectWrite = Callable[[bytes, bool], bool]
"""``write(data, binary)``: ``data`` as one text (UTF-8) or binary message, written now
(True), or nothing done (False: use ``send()``)."""


def direct_writer(scope: Mapping[str, Any]) -> DirectWrite | None:
    """The connection's direct writer, if its server offers one."""
    found = scope.get("extensions", {}).get(DIRECT_KEY)
    return found if callable(found) else None
