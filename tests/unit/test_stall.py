"""The node's stall clock (core/stall.py) and what it does to resume windows
(ServerSession.expires_at): while the node is overloaded, a detached session's window
stands still, up to ``resume_stretch`` windows in all. Time is passed in."""

from __future__ import annotations

from typing import Any

import pytest

from anywire.core.session import Heartbeat, ServerSession, SessionAction
from anywire.core.settings import Settings
from anywire.core.stall import StallClock, stretch

WS = Heartbeat(ping_interval=20.0, dead_after=30.0)


def detached(at: float, stalled: float, **overrides: Any) -> ServerSession:
    sess = ServerSession("sid", "user", "/", Settings(**overrides), 0.0)
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    assert sess.detach(conn, at, stalled)
    return sess


def test_the_clock_runs_only_while_overloaded() -> None:
    clock = StallClock()
    assert clock.read(5.0) == 0.0 and not clock.overloaded
    clock.set(10.0, True)
    assert clock.overloaded
    assert clock.read(12.5) == 2.5  # running
    clock.set(11.0, True)  # already on: the period still started at 10
    assert clock.read(13.0) == 3.0
    clock.set(14.0, False)
    assert clock.read(100.0) == 4.0  # stopped
    clock.set(15.0, False)  # already off: nothing
    clock.set(20.0, True)
    clock.set(21.5, False)
    assert clock.read(50.0) == 5.5
    assert not clock.overloaded


def test_the_clock_never_runs_backwards() -> None:
    clock = StallClock()
    clock.set(10.0, True)
    assert clock.read(9.0) == 0.0  # read before the period began (a late sample)
    clock.set(8.0, False)  # ended "before" it began: counts nothing
    assert clock.read(20.0) == 0.0


@pytest.mark.parametrize(
    ("stalled", "mark", "window", "factor", "expected"),
    [
        (0.0, 0.0, 30.0, 3.0, 0.0),  # no overload: no stretch
        (12.0, 2.0, 30.0, 3.0, 10.0),  # the overload since the mark
        (500.0, 0.0, 30.0, 3.0, 60.0),  # at most (3 - 1) windows
        (500.0, 0.0, 30.0, 1.0, 0.0),  # 1: off
        (1.0, 5.0, 30.0, 3.0, 0.0),  # a mark past the reading: nothing, never negative
    ],
)
def test_stretch(
    stalled: float, mark: float, window: float, factor: float, expected: float
) -> None:
    assert stretch(stalled, mark, window, factor) == expected


def test_a_window_stands_still_while_the_node_is_overloaded() -> None:
    clock = StallClock()
    clock.set(5.0, True)  # overloaded since 5
    sess = detached(10.0, clock.read(10.0), resume_window=30.0)  # mark 5
    assert sess.expires_at(clock.read(10.0)) == 40.0
    # At 40 the node has been overloaded 30 s more: not expired, and the deadline the
    # host polls next moves with the clock.
    assert sess.poll(40.0, clock.read(40.0)) == []
    assert sess.next_deadline(clock.read(40.0)) == 70.0
    clock.set(45.0, False)  # overload over at 45: 35 s of it since the detach
    assert sess.expires_at(clock.read(60.0)) == 75.0
    assert sess.poll(74.9, clock.read(74.9)) == []
    assert sess.poll(75.0, clock.read(75.0)) == [SessionAction("expire")]


def test_overload_before_the_detach_does_not_count() -> None:
    clock = StallClock()
    clock.set(0.0, True)
    clock.set(8.0, False)  # 8 s of overload, over before the session was detached
    sess = detached(10.0, clock.read(10.0), resume_window=30.0)
    assert sess.poll(40.0, clock.read(40.0)) == [SessionAction("expire")]


def test_the_stretch_is_bounded_by_resume_stretch_windows() -> None:
    clock = StallClock()
    sess = detached(10.0, clock.read(10.0), resume_window=30.0, resume_stretch=2.0)
    clock.set(10.0, True)  # overloaded from the detach on, without end
    assert sess.poll(69.9, clock.read(69.9)) == []
    assert sess.poll(70.0, clock.read(70.0)) == [SessionAction("expire")]  # 2 windows


def test_stretch_one_is_the_plain_window() -> None:
    clock = StallClock()
    sess = detached(10.0, clock.read(10.0), resume_window=30.0, resume_stretch=1.0)
    clock.set(10.0, True)
    assert sess.poll(40.0, clock.read(40.0)) == [SessionAction("expire")]


def test_a_resume_starts_a_new_mark() -> None:
    clock = StallClock()
    clock.set(0.0, True)
    sess = detached(10.0, clock.read(10.0), resume_window=30.0)
    conn = object()
    sess.attach(conn, 20.0, WS, 0)  # resumed while overloaded
    clock.set(30.0, False)  # 30 s of overload in all
    sess.detach(conn, 50.0, clock.read(50.0))
    assert sess.poll(80.0, clock.read(80.0)) == [SessionAction("expire")]  # none since


def test_resume_stretch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="resume_stretch"):
        Settings(resume_stretch=0.5)
