"""Two sessions under one sid: a fresh session keeps the sid of the one it replaces, so a
late HTTP request of the old one (a POST or poll still in flight, or routed to the old
node while the owner record was stale) names the same sid. Its frames are numbered for the
old session: it is refused (4007), and the new session is untouched (issue #12's soak:
such a POST hit the new session, failed its sequence check and closed it for good)."""

from __future__ import annotations

import pytest

from anywire.core.closecodes import CloseCode
from anywire.core.errors import AuthError
from anywire.core.frames import Connect, Event, Resume
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.websocket import INFO as WEBSOCKET

from .helpers import issue


async def _open(aw: Anywire, ticket: str) -> Link:
    link = Link(WEBSOCKET, aw.host.codec("json"))
    await aw.host.attach(link, Connect(ticket))
    aw.host.outgoing(link)  # the hello
    return link


async def test_a_token_of_the_session_a_fresh_one_replaced_is_refused_with_4007() -> None:
    aw = Anywire(anonymous=True)

    @aw.on("echo")
    def echo(sock: object, data: object) -> object:
        return data

    await aw.start()
    try:
        first = await issue(aw)
        await _open(aw, first.ticket)
        sid = first.sid
        assert aw.host.resolve(first.token) == sid
        aw.host._expire(aw.host.sessions[sid], run_hooks=False, end="moved")  # node lost
        second = await issue(aw, resume=first.token)
        assert second.sid == sid and second.resumable is False
        link = await _open(aw, second.ticket)
        with pytest.raises(AuthError) as refused:
            aw.host.resolve(first.token)
        assert refused.value.code == CloseCode.SESSION_UNKNOWN
        assert aw.host.resolve(second.token) == sid
        # The new session goes on with its own numbering.
        aw.host.feed(sid, [Event(s=1, id=1, e="echo", d="ok")])
        frames = [link.codec.decode(raw) for raw in aw.host.outgoing(link)]
        assert {"t": "ack", "s": 1, "id": 1, "ok": True, "d": "ok"} in frames
    finally:
        await aw.stop(grace=0.1)


async def test_tokens_of_earlier_connections_of_a_resumed_session_still_work() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        first = await issue(aw)
        await _open(aw, first.ticket)
        again = await issue(aw, resume=first.token)
        assert again.resumable is True
        link = Link(WEBSOCKET, aw.host.codec("json"))
        await aw.host.attach(link, Resume(again.ticket, 0))
        # A POST of the previous connection still in flight is the same session's.
        assert aw.host.resolve(first.token) == aw.host.resolve(again.token) == first.sid
    finally:
        await aw.stop(grace=0.1)
