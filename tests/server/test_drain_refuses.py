"""A draining node processes nothing a session sends after it was told to move (4000).

The drain's close carries a receipt for everything processed before it. A frame
processed after it is covered by nothing but its own answer (a POST's 204), and when
that answer does not reach the client before the node goes (uvicorn cuts what still runs
once its graceful timeout passes), the client sends the frame again to its next
session: processed twice. Refused, the client keeps it and sends it once
(docs/reliability/client-upstream-restart.md, protocol 6.7). On every transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from anywire.core.closecodes import CloseCode
from anywire.core.errors import ProtocolError
from anywire.core.frames import Event
from anywire.server.app import Anywire
from anywire.transports.base import TransportInfo
from tests.scale.inproc import INFOS, Peer, until

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
async def test_frames_sent_after_the_drains_close_are_refused_not_processed(
    info: TransportInfo,
) -> None:
    aw = Anywire(anonymous=True)
    got: list[Any] = []

    @aw.on("log")
    def log(sock: Any, data: Any) -> None:
        got.append(data)

    await aw.start()
    try:
        peer = Peer(aw, info)
        await peer.connect()
        aw.host.feed(peer.sid, [Event(s=1, e="log", d=1)])
        assert got == [1]
        drain = asyncio.ensure_future(aw.host.shutdown(budget=1.0))
        link = peer.link
        assert link is not None
        await until(lambda: link.closing is not None, 5)
        assert link.closing is not None and link.closing[0] == CloseCode.SHUTDOWN
        with pytest.raises(ProtocolError) as refused:
            aw.host.feed(peer.sid, [Event(s=2, e="log", d=2)])
        assert refused.value.code == CloseCode.SHUTDOWN
        assert got == [1]  # not processed: the client still holds it
        async with asyncio.timeout(5):
            await drain
    finally:
        await aw.stop(grace=0.1)
