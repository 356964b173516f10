"""A presence change that meets a stopped broker is handled like one that meets Redis
down: told on this node only, no traceback. Seen in tests/chaos under load: a graceful
stop's bounded presence drain (shutdown_timeout) did not get through a node's queued
leaves before its broker stopped, and each one left was logged as "presence change
failed" with a BrokerUnavailable traceback (209 in one node's log)."""

from __future__ import annotations

import logging

import pytest

from anywire.core.rooms import Member
from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.server.broker import Envelope

from .conftest import RedisServer


async def test_a_change_after_the_broker_stopped_is_handled_like_redis_down(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    aw = Anywire(anonymous=True, settings=Settings(redis_url=redis.url), secret=b"s" * 32)
    await aw.start()
    assert aw.cluster is not None
    presence = aw.cluster.presence
    await aw.stop()  # the broker is stopped: what the rest of a late drain meets
    member = Member("sid-late", "u1")
    env = Envelope("room", "/", "lobby", "$leave", {"room": "lobby", **member.to_wire()})
    with caplog.at_level(logging.WARNING, logger="anywire"):
        presence.change(env, member, "inc-1")
        await presence.drain(5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
