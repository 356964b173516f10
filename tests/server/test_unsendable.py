"""Values one codec could carry and another could not (issue #13, item 6): join metadata
holding 2^64 is answered (an error ack), not left without an answer, and a JSON client is
never sent an integer MessagePack cannot carry. In-process: real host, real Links."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from anywire.core.frames import Connect, Event, Join
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.websocket import INFO as WEBSOCKET

from .helpers import issue

UNSENDABLE = [2**64, -(2**63) - 1, float("nan")]


async def _link(aw: Anywire) -> Link:
    _, _, ticket, _ = await issue(aw)
    link = Link(WEBSOCKET, aw.host.codec("json"))
    await aw.host.attach(link, Connect(ticket))
    aw.host.outgoing(link)  # the hello
    return link


async def _next_ack(aw: Anywire, link: Link) -> dict[str, Any]:
    async with asyncio.timeout(2):
        while True:
            for raw in aw.host.outgoing(link):
                frame = link.codec.decode(raw)
                if frame["t"] == "ack":
                    return dict(frame)
            await link.wait(0.5)


@pytest.mark.parametrize("meta", UNSENDABLE, ids=repr)
async def test_join_metadata_no_codec_pair_can_carry_is_answered_bad_request(meta: Any) -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        link = await _link(aw)
        assert link.sid is not None
        aw.host.feed(link.sid, [Join(s=1, id=5, r="lobby", meta={"n": meta})])
        ack = await _next_ack(aw, link)
        assert ack["id"] == 5 and ack["ok"] is False
        assert ack["err"]["code"] == "bad_request"
        assert aw.presence("lobby") == []  # never entered, so nobody was told
        # The session goes on: the next join is answered normally.
        aw.host.feed(link.sid, [Join(s=2, id=6, r="lobby", meta={"n": 1})])
        ack = await _next_ack(aw, link)
        assert ack["id"] == 6 and ack["ok"] is True
    finally:
        await aw.stop(grace=0.1)


@pytest.mark.parametrize("result", UNSENDABLE, ids=repr)
async def test_a_json_client_is_never_sent_a_value_messagepack_could_not_carry(
    result: Any,
) -> None:
    aw = Anywire(anonymous=True)

    @aw.on("give")
    def give(sock: Any, data: Any) -> Any:
        return {"big": [result]}

    await aw.start()
    try:
        link = await _link(aw)
        assert link.sid is not None
        aw.host.feed(link.sid, [Event(s=1, e="give", id=1)])
        ack = await _next_ack(aw, link)
        assert ack["ok"] is False and ack["err"]["code"] == "handler_error"
        assert "not sendable" in ack["err"]["message"]
        with pytest.raises(TypeError):
            await aw.emit("news", {"big": result})  # refused to the application
    finally:
        await aw.stop(grace=0.1)


async def test_a_server_side_join_with_unsendable_metadata_raises_and_leaves_no_trace() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        link = await _link(aw)
        assert link.sid is not None
        sock = aw.socket(link.sid)
        assert sock is not None
        with pytest.raises(TypeError):
            await sock.join("lobby", {"n": 2**64})
        assert aw.presence("lobby") == []
    finally:
        await aw.stop(grace=0.1)
