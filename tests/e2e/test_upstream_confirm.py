"""An upstream POST answered 204 confirms the frames it carried (protocol 8.5): the server
processed them before answering, so the client drops them from its resend buffer at once,
instead of waiting for the downstream's rx. Otherwise a session lost right after the POST
(a server restart) would make the client send them again into a fresh session.

HTTP upstream only by nature: a WebSocket send completes when the frame is buffered, not
processed, so WebSocket clients wait for rx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from anywire.clients.python import Client

from .conftest import Server, make_token, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # The server's own rx would only come after 30 s: no ping, no ack, nothing to ride on.
    srv = start_server({"AW_ACK_DELAY": "30", "AW_PING_INTERVAL": "30", "AW_PING_TIMEOUT": "30"})
    yield srv
    srv.stop()


@pytest.mark.parametrize("transport", ["sse", "longpoll"])
async def test_accepted_post_confirms_its_frames(server: Server, transport: str) -> None:
    user = f"confirm-{transport}"
    async with Client(server.url, token=lambda: make_token(user), transports=(transport,)) as c:
        for i in range(5):
            await c.emit("record", i)
        async with asyncio.timeout(5):
            while c.peer.unconfirmed:
                await asyncio.sleep(0.02)
        async with Client(server.url, token=lambda: make_token(user)) as other:
            assert await other.call("recorded") == list(range(5))
