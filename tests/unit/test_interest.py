"""Interest: which streams a node subscribes, with a linger (no event loop, time passed in)."""

from __future__ import annotations

import pytest

from anywire.core.gaps import GapTracker
from anywire.core.interest import Interest


def test_first_consumer_subscribes_and_later_ones_do_not() -> None:
    t = Interest(linger=5)
    assert t.add("room:/:a", "s1") is True
    assert t.take(0) == (["room:/:a"], [])
    assert t.add("room:/:a", "s2") is False
    assert t.add("room:/:a", "s1") is False  # the same consumer again counts once
    assert t.consumers("room:/:a") == 2
    assert t.take(0) == ([], [])


def test_many_wants_in_one_turn_are_one_batch() -> None:
    t = Interest()
    for i in range(100):
        t.add(f"room:/:{i}", f"s{i}")
    subscribe, unsubscribe = t.take(0)
    assert sorted(subscribe) == sorted(f"room:/:{i}" for i in range(100))
    assert unsubscribe == []


def test_last_consumer_leaving_lingers_then_unsubscribes() -> None:
    t = Interest(linger=5)
    t.add("room:/:a", "s1")
    t.add("room:/:a", "s2")
    t.take(0)
    t.remove("room:/:a", "s1", now=10)
    assert t.next_due() is None  # one consumer is left
    t.remove("room:/:a", "s2", now=10)
    assert "room:/:a" in t and t.consumers("room:/:a") == 0
    assert t.next_due() == 15
    assert t.take(14.9) == ([], [])
    assert t.take(15) == ([], ["room:/:a"])
    assert "room:/:a" not in t and len(t) == 0


def test_a_consumer_returning_within_the_linger_takes_the_stream_over() -> None:
    t = Interest(linger=5)
    t.add("room:/:a", "s1")
    t.take(0)
    t.remove("room:/:a", "s1", now=1)
    assert t.add("room:/:a", "s1b") is False  # still subscribed: no resubscribe
    assert t.take(100) == ([], [])
    assert t.consumers("room:/:a") == 1


def test_a_stream_dropped_before_it_was_subscribed_is_gone_at_once() -> None:
    t = Interest(linger=5)
    t.add("room:/:a", "s1")
    assert t.remove("room:/:a", "s1", now=0) is True
    assert t.take(0) == ([], []) and len(t) == 0


def test_forget_removes_a_consumer_from_every_stream() -> None:
    t = Interest(linger=0)
    for stream in ("room:/:a", "room:/:b", "user:/:u", "sess:/:s1", "all:/"):
        t.add(stream, "s1")
    t.add("room:/:a", "s2")
    t.take(0)
    t.forget("s1", now=3)
    subscribe, unsubscribe = t.take(3)
    assert subscribe == []
    assert sorted(unsubscribe) == ["all:/", "room:/:b", "sess:/:s1", "user:/:u"]
    assert t.streams() == ["room:/:a"]
    t.forget("s1", now=4)  # twice: nothing more
    t.remove("room:/:a", "s1", now=4)  # a consumer it no longer has: nothing
    assert t.consumers("room:/:a") == 1


def test_bound_is_what_is_consumed_plus_what_lingers() -> None:
    t = Interest(linger=2)
    for i in range(10):
        t.add(f"room:/:{i}", "s")
    t.take(0)
    for i in range(5):
        t.remove(f"room:/:{i}", "s", now=float(i))
    assert len(t) == 10  # 5 consumed, 5 lingering
    _, gone = t.take(4.0)  # removed at 0, 1, 2 are due (at 2, 3, 4)
    assert gone == ["room:/:0", "room:/:1", "room:/:2"]
    assert len(t) == 7
    assert t.next_due() == 5.0


def test_negative_linger_is_refused() -> None:
    with pytest.raises(ValueError):
        Interest(linger=-1)


def test_a_forgotten_stream_is_seeded_again_from_a_fresh_read() -> None:
    # What the broker does when it unsubscribes: the gap tracker forgets the stream, so
    # the next consumer's read seeds it (a stale position would ask for a needless fill).
    g = GapTracker()
    g.offer("room:/:a", "e", 1, "x")
    g.forget("room:/:a")
    assert g.position("room:/:a") is None
    g.seed("room:/:a", "e", 40)
    assert g.offer("room:/:a", "e", 41, "y").items == ["y"]
