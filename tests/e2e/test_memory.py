"""A client that never acknowledges (never reads) and re-joins a busy room again and
again: its answers count in its outbox's byte budget, so it is closed with 4002
SLOW_CONSUMER and may resume (``recovered: false``), while a bystander in the same room
keeps receiving everything, in order (issue #13, memory bounded per connection)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from anywire.clients.python import AckError, Client

from .conftest import Server, make_token, start_server
from .raw import RawConn

CROWD = 30  # members of the busy room besides the bystander
META = {"pad": "m" * 950}  # just under max_meta_size (1024 bytes encoded)
PAD = "t" * 12_000  # in each broadcast (client frames: at most 16 KiB here)


@pytest.fixture(scope="module")
def busy_server() -> Iterator[Server]:
    srv = start_server(
        {
            "AW_OUTBOX_BYTES": str(256 * 1024),
            "AW_PING_INTERVAL": "2",
            "AW_PING_TIMEOUT": "8",  # the stalled reader reads again well before a cut
            "AW_RESUME_WINDOW": "20",
            "AW_PRESENCE_LIMIT": "10",  # answers list 10 of the 30-odd members
        }
    )
    yield srv
    srv.stop()


async def _rejoin(conn: RawConn, room: str) -> None:
    """Join ``room`` again and again (the join answers list the members' presence)."""
    for seq in range(2, 5000):
        await conn.send({"t": "join", "s": seq, "id": seq, "r": room, "meta": META})
        if seq % 20 == 0:
            await asyncio.sleep(0.005)  # (pacing: below the flood limit)


async def _ask(conn: RawConn, seq: int, event: str, data: Any, ticks: list[int]) -> Any:
    """Send a request on a reading connection and return its ack's data (the ``tick``
    events that arrive meanwhile go to ``ticks``)."""
    await conn.send({"t": "event", "s": seq, "id": seq, "e": event, "d": data})
    while True:
        frame = await conn.recv(timeout=10)
        if frame["t"] == "event" and frame["e"] == "tick":
            ticks.append(frame["d"]["n"])
        if frame["t"] == "ack" and frame["id"] == seq:
            assert frame["ok"], frame
            return frame["d"]


async def _joined(conn: RawConn, room: str, meta: Any, seq: int = 1) -> dict[str, Any]:
    await conn.open()
    await conn.send({"t": "join", "s": seq, "id": seq, "r": room, "meta": meta})
    while True:
        frame = await conn.recv(timeout=10)
        if frame["t"] == "ack" and frame["id"] == seq:
            assert frame["ok"], frame
            return dict(frame["d"])


async def _drain_until_close(conn: RawConn, last: int) -> tuple[int | None, int]:
    """Read what the server still sends until the connection ends: the close code seen,
    and the last sequence number the client has in order from ``last`` on (what it may
    resume from; frames dropped from its outbox leave a gap)."""
    code = None
    async with asyncio.timeout(30):
        while True:
            frame = await conn.inbox.get()
            t = frame.get("t")
            if t in ("event", "ack") and frame["s"] == last + 1:
                last += 1
            elif t == "close":
                code = frame["c"]
                if conn.transport == "longpoll":
                    return code, last
            elif t == "_http":  # long-poll: the next poll learns the close (410)
                body = json.loads(frame["body"])
                return (int(body[0]["c"]) if isinstance(body, list) else int(body["code"])), last
            elif t == "_closed":
                return (code if code is not None else frame.get("code")), last


async def test_a_client_that_never_acknowledges_is_closed_4002_and_a_bystander_keeps_going(
    busy_server: Server, transport: str
) -> None:
    url = busy_server.url
    room = f"busy-{transport}"
    crowd = [RawConn(url, "websocket", make_token(f"crowd-{transport}-{i}")) for i in range(CROWD)]
    bystander = RawConn(url, "websocket", make_token(f"bystander-{transport}"))
    hostile = RawConn(url, transport, make_token(f"hostile-{transport}"))
    back: RawConn | None = None
    try:
        await asyncio.gather(*(_joined(c, room, META) for c in crowd))
        answer = await _joined(bystander, room, META)
        assert answer["count"] == CROWD + 1 and answer["partial"] is True
        assert len(answer["presence"]) == 10
        assert answer["presence"][0]["sid"] == bystander.neg["sid"]
        first = await _joined(hostile, room, META)
        assert first["count"] == CROWD + 2
        sid = hostile.neg["sid"]

        # From now on the hostile client reads nothing and acknowledges nothing, and
        # asks for the room's presence (~30 KB an answer) again and again.
        # (A WebSocket server may stop reading a client that does not read: the room's
        # broadcasts, from the bystander, fill its outbox all the same.)
        hostile.reading.clear()
        rejoins = asyncio.create_task(_rejoin(hostile, room))
        tick, asked, closed = 0, 1, None
        ticks: list[int] = []
        try:
            async with asyncio.timeout(40):
                while closed is None or closed["close"] is None:
                    tick += 1  # the bystander is served meanwhile: a broadcast, a question
                    tock = {"room": room, "event": "tick", "data": {"n": tick, "pad": PAD}}
                    await _ask(bystander, asked + 1, "to_room", tock, ticks)
                    closed = await _ask(bystander, asked + 2, "last_close", sid, ticks)
                    asked += 2
        finally:
            rejoins.cancel()
        assert closed["close"][0] == 4002, closed

        # The bystander got every broadcast, once, in order.
        async with asyncio.timeout(10):
            while len(ticks) < tick:
                frame = await bystander.recv(timeout=10)
                if frame["t"] == "event" and frame["e"] == "tick":
                    ticks.append(frame["d"]["n"])
        assert ticks == list(range(1, tick + 1))

        # The hostile client reads again: it learns 4002, and its session is resumable...
        hostile.reading.set()
        code, last = await _drain_until_close(hostile, 1)  # it had its first answer, s=1
        assert code == 4002
        back = RawConn(url, transport, make_token(f"hostile-{transport}"))
        negotiated = (await back.negotiate(resume=hostile.neg["token"])).json()
        assert negotiated["resumable"] is True and negotiated["sid"] == sid
        # ...but what it needs was dropped: the resume gets recovered: false.
        hello = await back.open(resume_last=last, resume=hostile.neg["token"])
        assert hello["t"] == "hello" and hello["recovered"] is False and hello["sid"] == sid
    finally:
        for conn in [*crowd, bystander, hostile, *([back] if back else [])]:
            await conn.close()


async def test_the_python_client_sees_count_partial_and_the_meta_refusal(
    busy_server: Server, transport: str
) -> None:
    room = f"counted-{transport}"
    url = busy_server.url
    members = [RawConn(url, "websocket", make_token(f"m-{transport}-{i}")) for i in range(12)]
    client = Client(busy_server.url, make_token(f"py-{transport}"), transports=[transport])
    try:
        await asyncio.gather(*(_joined(m, room, {"i": i}) for i, m in enumerate(members)))
        await client.connect()
        answer = await client.join(room, {"me": True})
        assert answer["count"] == 13 and answer["partial"] is True
        assert len(answer["presence"]) == 10
        with pytest.raises(AckError) as refused:  # meta over max_meta_size (1024 bytes)
            await client.join("other", {"pad": "z" * 2000})
        assert refused.value.code == "bad_request"
        small = await client.join("quiet")
        assert small["count"] == 1 and small["partial"] is False
    finally:
        await client.close()
        for m in members:
            await m.close()
