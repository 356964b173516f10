"""The fault hook (anywire/server/faults.py) in-process: a real host, real Link objects,
frames as the writer of each link would write them. Every fault's exact effect on the
sequence numbers written, and that it spends itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from anywire.core.codec import Outgoing
from anywire.core.frames import Connect
from anywire.server.app import Anywire
from anywire.server.faults import Faults
from anywire.server.socket import Socket
from anywire.transports.base import Link
from anywire.transports.longpoll import INFO as LONGPOLL
from anywire.transports.websocket import INFO as WEBSOCKET
from tests.server.helpers import issue


@pytest.fixture
async def aw() -> AsyncIterator[Anywire]:
    app = Anywire(anonymous=True)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0.1)


async def _attached(aw: Anywire, info: Any = WEBSOCKET) -> tuple[Link, Socket]:
    _, _, ticket, _ = await issue(aw)
    link = Link(info, aw.host.codec("json"))
    await aw.host.attach(link, Connect(ticket))
    aw.host.outgoing(link)  # the hello
    assert link.sid is not None
    return link, aw.host.sockets[link.sid]


def _push(aw: Anywire, sock: Socket, *values: int) -> None:
    sess = aw.host.sessions[sock.sid]
    for v in values:
        aw.host.push(sess, Outgoing("event", {"e": "n", "d": v}))


def _written(aw: Anywire, link: Link) -> list[Any]:
    """What the writer would write now: the data of each event, and ("close", code)."""
    out: list[Any] = []
    for f in map(link.codec.decode, aw.host.outgoing(link)):
        if f["t"] == "event":
            out.append(f["d"])
        elif f["t"] == "close":
            out.append(("close", f["c"]))
    return out


async def test_no_hook_unless_installed_and_install_is_idempotent(aw: Anywire) -> None:
    assert aw.host.faults is None
    faults = Faults.install(aw)
    assert aw.host.faults is faults and Faults.install(aw) is faults


async def test_reorder_holds_k_frames_across_writes_and_writes_them_last_first(
    aw: Anywire,
) -> None:
    faults = Faults.install(aw)
    link, sock = await _attached(aw)
    assert faults.reorder(sock, 3) == 3
    _push(aw, sock, 0, 1)
    assert _written(aw, link) == []  # held
    _push(aw, sock, 2, 3)
    assert _written(aw, link) == [2, 1, 0, 3]
    _push(aw, sock, 4)
    assert _written(aw, link) == [4]  # spent
    assert faults.applied[sock.sid] == 3


async def test_duplicate_writes_each_of_the_next_k_frames_twice(aw: Anywire) -> None:
    faults = Faults.install(aw)
    link, sock = await _attached(aw)
    faults.duplicate(sock, 2)
    _push(aw, sock, 0, 1, 2)
    assert _written(aw, link) == [0, 0, 1, 1, 2]


async def test_repeat_hands_written_frames_again(aw: Anywire) -> None:
    faults = Faults.install(aw)
    link, sock = await _attached(aw)
    _push(aw, sock, 0, 1, 2)
    assert _written(aw, link) == [0, 1, 2]
    assert faults.repeat(sock, 2) == 2
    _push(aw, sock, 3)
    assert _written(aw, link) == [1, 2, 3]


async def test_drop_after_k_frames_closes_with_4000_and_keeps_the_rest(aw: Anywire) -> None:
    faults = Faults.install(aw)
    link, sock = await _attached(aw)
    faults.drop_after(sock, 2)
    _push(aw, sock, 0, 1, 2, 3)
    assert _written(aw, link) == [0, 1, ("close", 4000)]
    sess = aw.host.sessions[sock.sid]
    assert sess.written == sess.out_seq - 2  # 2 and 3 wait in the outbox for the resume


async def test_lost_frames_come_back_with_the_next_long_poll_ack(aw: Anywire) -> None:
    faults = Faults.install(aw)
    link, sock = await _attached(aw, LONGPOLL)
    sess = aw.host.sessions[sock.sid]
    acked = sess.written  # what the client has: up to the hello's frames
    faults.lose(sock, 2)
    _push(aw, sock, 0, 1, 2)
    assert _written(aw, link) == [2]  # the client sees a gap; its poll acks where it is
    aw.host.poll_started(sock.sid, acked)  # section 8.4: everything after is sent again
    assert _written(aw, link) == [0, 1, 2]


async def test_a_fault_armed_on_a_gone_connection_is_dropped(aw: Anywire) -> None:
    faults = Faults.install(aw)
    link, sock = await _attached(aw)
    faults.lose(sock, 5)
    sess = aw.host.sessions[sock.sid]
    frame = (sess.out_seq + 1, Outgoing("event", {"e": "n", "d": 0}))
    other = Link(WEBSOCKET, aw.host.codec("json"))  # as after a resume on a new link
    assert faults.pending(other, sess, [frame]) == [frame]  # passed, not lost
    _push(aw, sock, 1, 2)
    assert _written(aw, link) == [1, 2]  # and the fault is gone for good
    assert sock.sid not in faults.applied


async def test_expire_forgets_the_session_now(aw: Anywire) -> None:
    faults = Faults.install(aw)
    _, sock = await _attached(aw)
    assert faults.expire(sock) is True
    assert sock.sid not in aw.host.sessions
    assert faults.expire(sock) is False


async def test_a_fault_on_no_frame_is_a_clear_error(aw: Anywire) -> None:
    faults = Faults.install(aw)
    _, sock = await _attached(aw)
    for arm in (faults.reorder, faults.duplicate, faults.lose, faults.drop_after):
        with pytest.raises(ValueError, match="k >= 1"):
            arm(sock, 0)
