"""Adaptive heartbeats and the battery profile: what a negotiate may ask for, what the
server grants, and what the session's heartbeat becomes."""

from __future__ import annotations

import pytest

from anywire.clients.python.liveness import IdleCuts
from anywire.core.errors import RemoteProtocolError
from anywire.core.pinginterval import (
    asked_interval,
    dead_after,
    grant_interval,
    keepalive_period,
    longest_hold,
    poll_hold,
)
from anywire.core.session import Heartbeat
from anywire.core.settings import Settings
from anywire.server.heartbeats import heartbeat


def test_granted_interval_is_bounded_by_the_server() -> None:
    s = Settings(ping_interval=20.0, min_ping_interval=5.0)
    assert grant_interval(s, None) == 20.0
    assert grant_interval(s, 8.0) == 8.0
    assert grant_interval(s, 1.0) == 5.0  # never below min_ping_interval
    assert grant_interval(s, 60.0) == 20.0  # never longer than the server's own


@pytest.mark.parametrize("bad", [0, -5, 1.5, "3000", True, [1]])
def test_a_malformed_request_is_refused(bad: object) -> None:
    with pytest.raises(RemoteProtocolError):
        asked_interval(bad)


def test_milliseconds_become_seconds() -> None:
    assert asked_interval(None) is None
    assert asked_interval(2500) == 2.5


def test_a_longer_interval_needs_the_operator() -> None:
    off = Settings(ping_interval=20.0)  # max_ping_interval unset: never longer
    assert off.ping_ceiling == 20.0
    assert grant_interval(off, 60.0) == 20.0
    on = Settings(ping_interval=20.0, max_ping_interval=60.0)
    assert grant_interval(on, 45.0) == 45.0
    assert grant_interval(on, 600.0) == 60.0  # never longer than max_ping_interval
    assert grant_interval(on, 1.0) == 5.0


def test_max_ping_interval_below_ping_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="max_ping_interval"):
        Settings(ping_interval=20.0, max_ping_interval=10.0)


def test_poll_hold_follows_the_grant() -> None:
    s = Settings(ping_interval=20.0, poll_window=15.0, max_ping_interval=60.0)
    assert poll_hold(s, 20.0) == 15.0  # the server's own
    assert poll_hold(s, 8.0) == 8.0  # never longer than a shorter interval
    assert poll_hold(s, 45.0) == 45.0  # up to a longer one
    assert longest_hold(s) == 60.0
    assert longest_hold(Settings(ping_interval=20.0, poll_window=15.0)) == 15.0


def test_sse_keepalives_follow_a_longer_grant_only() -> None:
    s = Settings(ping_interval=20.0, max_ping_interval=60.0)
    assert keepalive_period(s, 15.0, None) == 15.0  # the usual period
    assert keepalive_period(s, 15.0, 20.0) == 15.0  # the server's own interval
    assert keepalive_period(s, 15.0, 5.0) == 15.0  # a shorter grant pings more anyway
    assert keepalive_period(s, 15.0, 18.0) == 15.0
    assert keepalive_period(s, 15.0, 45.0) == 45.0  # battery: no comment every 15 s
    assert keepalive_period(Settings(ping_interval=1.0), 15.0, None) == 1.0


def test_silence_limit_grows_with_a_longer_interval_only() -> None:
    s = Settings(ping_interval=20.0, ping_timeout=10.0, poll_window=15.0, max_ping_interval=60.0)
    assert dead_after(s, True, 20.0) == 30.0
    assert dead_after(s, True, 8.0) == 30.0  # a shorter interval only adds traffic
    assert dead_after(s, True, 45.0) == 55.0  # the client's pongs come that rarely
    assert dead_after(s, False, 8.0) == 25.0  # long-poll: poll_window + ping_timeout
    assert dead_after(s, False, 45.0) == 55.0  # ...or the longer hold + ping_timeout


def test_server_heartbeat_uses_the_grant() -> None:
    s = Settings(ping_interval=1.0, ping_timeout=1.0, poll_window=1.0, max_ping_interval=3.0)
    assert heartbeat(s, True, None) == Heartbeat(1.0, 2.0)
    assert heartbeat(s, True, 2.5) == Heartbeat(2.5, 3.5)
    assert heartbeat(s, False, 2.5) == Heartbeat(None, 3.5)


def test_the_client_heartbeat_option_yields_to_idle_cuts() -> None:
    cuts = IdleCuts(heartbeat=30.0)
    assert cuts.request_ms() == 30_000  # asked at every negotiate
    assert not cuts.ended(6.0, None, 30.0)  # one cut says nothing yet
    assert cuts.ended(6.0, None, 30.0)  # two agreeing cuts: a third of them
    assert cuts.request_ms() == 2000  # shorter wins
    assert IdleCuts().request_ms() is None
    with pytest.raises(ValueError, match="heartbeat"):
        IdleCuts(heartbeat=0)
