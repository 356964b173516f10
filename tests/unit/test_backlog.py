"""Handshakes (core/backlog.py): tickets in flight and the adaptive limit on them. The
limit starts at its ceiling (a node that keeps up never refuses), drops to the rate the
node finished handshakes at times the target when a period's redeems were mostly late
(enough of them: one slow client is not enough), grows with each prompt redeem, and
stays within its bounds; an unredeemed ticket stops counting after the horizon. Time is
passed in."""

from __future__ import annotations

from anywire.core.backlog import Handshakes


def test_in_flight_counts_young_unredeemed_tickets() -> None:
    hs = Handshakes(horizon=10.0, floor=2, ceiling=3)
    hs.issued("a", 0.0)
    hs.issued("b", 1.0)
    assert not hs.full(1.0)
    hs.issued("c", 2.0)
    assert hs.in_flight(2.0) == 3
    assert hs.full(2.0)  # 3 >= limit 3
    hs.redeemed("b", 0.5, 2.5)
    assert hs.in_flight(3.0) == 2
    assert hs.in_flight(10.5) == 1  # "a" is past the horizon: given up
    assert hs.in_flight(12.5) == 0


def test_a_node_that_keeps_up_never_refuses_below_the_ceiling() -> None:
    hs = Handshakes(floor=4, ceiling=5000)
    for i in range(1000):  # tickets taken and never used
        hs.issued(str(i), i / 1000)
    assert not hs.full(1.0)


def _period(hs: Handshakes, start: float, n: int, age: float, secs: float) -> bool:
    """``n`` redeems of ``age`` spread over ``secs`` from ``start``; whether any of them
    closed a period that found the node behind."""
    return any(hs.redeemed("x", age, start + secs * i / n) for i in range(n))


def test_a_late_period_drops_the_limit_to_what_the_node_finished() -> None:
    hs = Handshakes(target=2.0, floor=4, ceiling=1000, least=3)
    assert not _period(hs, 10.0, 100, 5.0, 1.9)  # 100 late redeems in one period
    # Judged by the next redeem: 100 in 2 s = 50/s, times 2 s = 100 (< 3/4 of 1000).
    assert hs.redeemed("x", 5.0, 12.0)
    assert hs.limit == 100.0


def test_a_drop_is_at_most_a_quarter() -> None:
    hs = Handshakes(target=2.0, floor=4, ceiling=1000, least=3)
    _period(hs, 10.0, 3000, 5.0, 1.9)  # 1,500/s: the node still finishes many
    assert hs.redeemed("x", 5.0, 12.0)
    assert hs.limit == 750.0


def test_never_below_the_floor() -> None:
    hs = Handshakes(target=2.0, floor=40, ceiling=1000, least=3)
    _period(hs, 10.0, 5, 5.0, 1.9)
    assert hs.redeemed("x", 5.0, 12.0)
    assert hs.limit == 40.0


def test_prompt_redeems_grow_the_limit_up_to_the_ceiling() -> None:
    hs = Handshakes(target=2.0, floor=4, ceiling=10)
    hs.limit = 4.0
    assert not _period(hs, 0.0, 20, 0.3, 5.0)
    assert hs.limit == 10


def test_one_slow_client_among_many_does_not_drop_the_limit() -> None:
    hs = Handshakes(target=2.0, floor=4, least=3, ceiling=1000)
    hs.limit = 50.0
    for i in range(40):  # 4 late among 40 in one period
        hs.redeemed(str(i), 9.0 if i % 10 == 0 else 0.2, 10.0 + i / 100)
    assert not hs.redeemed("y", 0.2, 12.5)
    assert hs.limit == 50.0 + 37  # only the prompt ones counted, upwards


def test_too_few_late_ones_do_not_drop_the_limit() -> None:
    hs = Handshakes(target=2.0, least=3, ceiling=1000)
    hs.limit = 50.0
    _period(hs, 10.0, 2, 5.0, 1.0)
    assert not hs.redeemed("x", 5.0, 12.0)
    assert hs.limit == 50.0
