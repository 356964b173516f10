"""Adaptive heartbeats: what a negotiate may ask for and what the server grants."""

from __future__ import annotations

import pytest

from anywire.core.errors import RemoteProtocolError
from anywire.core.pinginterval import asked_interval, grant_interval
from anywire.core.settings import Settings


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
