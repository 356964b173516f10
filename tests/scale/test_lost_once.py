"""An open-ended ``$lost`` reaches a session once, though two parts of the node find it.

Seen in tests/scale/test_sentinel_nodes.py (docs/reliability/sentinel-duplicates.md,
"Left"): a client that rejoined its room while Redis failed over got the old epoch's
``$lost`` twice, once from the node's gap tracker (the stream's history restarted: its
epoch vanished) and once from its rejoin's catch-up (from the position it had). The
clients drop the second one as a duplicate; the server should not send it.

Real parts: a redis-server the test starts, killed and started again empty while the
session's rejoin is catching up (so the session is a member when the node finds the
restart, and its catch-up finds it too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from anywire.core.frames import Join
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.transports.base import TransportInfo
from tests.e2e.conftest import free_port

from .conftest import SECRET, RedisServer
from .inproc import INFOS, Peer, until

pytestmark = pytest.mark.timeout(60)

ROOM = "r"


@pytest_asyncio.fixture
async def node() -> AsyncIterator[tuple[Anywire, RedisServer]]:
    redis = RedisServer(free_port())
    redis.start()
    # A patience (ping_interval + ping_timeout) long enough for Redis to come back
    # while the rejoin waits.
    settings = Settings(ping_interval=5.0, ping_timeout=10.0)
    aw = Anywire(anonymous=True, secret=SECRET.encode(), settings=settings)
    aw.use_redis(redis.url)
    await aw.start()
    try:
        yield aw, redis
    finally:
        await aw.stop(grace=0.1)
        redis.kill()


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
async def test_a_rejoin_across_a_history_restart_is_told_of_it_once(
    node: tuple[Anywire, RedisServer], info: TransportInfo
) -> None:
    aw, redis = node
    first, second = Peer(aw, info), Peer(aw, info)
    await first.connect()
    await second.connect()
    # The node consumes the room (first is in it) and tracks its epoch.
    aw.host.feed(first.sid, [Join(s=1, id=1, r=ROOM)])
    await until(first.answered(1), 10)
    for i in (1, 2, 3):
        _, epoch, _ = await aw.emit("tick", i, room=ROOM)
    await until(lambda: sum(f.get("e") == "tick" for f in first.read()) == 3, 10)
    # Redis goes away; second rejoins the room from tick 3 meanwhile (its catch-up
    # waits, patiently); Redis comes back empty: the room's epoch is gone.
    redis.kill()
    aw.host.feed(second.sid, [Join(s=1, id=2, r=ROOM, since=(epoch, 3))])
    redis.start()
    await until(second.answered(2), 30)
    await until(lambda: len(first.events("$lost")) > 0, 10)  # the node found the restart
    # Both are told once: everything after tick 3 in that epoch, count unknown. (Before
    # the fix the rejoined session got it twice: the node's and its catch-up's.)
    expected = {"stream": f"room:/:{ROOM}", "epoch": epoch, "from": 4, "to": None, "room": ROOM}
    assert first.events("$lost") == [expected]
    assert second.events("$lost") == [expected]
