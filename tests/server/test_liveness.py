"""Node liveness from heartbeat keys: slow to condemn, quick to forgive."""

from __future__ import annotations

from anywire.server.liveness import Liveness


def test_a_node_missing_twice_over_the_confirmation_time_is_dead() -> None:
    live = Liveness(confirm=2.0)
    assert live.observe(10.0, {"a": False, "b": True}) == []
    assert live.observe(11.0, {"a": False}) == []  # not long enough yet
    assert live.observe(12.0, {"a": False}) == ["a"]
    assert live.dead("a") and not live.dead("b")
    assert live.observe(13.0, {"a": False}) == []  # reported once


def test_a_node_seen_in_between_is_not_dead() -> None:
    live = Liveness(confirm=2.0)
    live.observe(10.0, {"a": False})
    live.observe(11.0, {"a": True})
    assert live.observe(12.5, {"a": False}) == []
    assert live.observe(14.5, {"a": False}) == ["a"]


def test_a_failed_check_clears_every_suspicion() -> None:
    """Redis paused: every key expires at once when it resumes. A check right after our
    own outage must not condemn nodes that simply have not beaten since."""
    live = Liveness(confirm=2.0)
    live.observe(10.0, {"a": False, "b": False})
    live.unsure()
    assert live.observe(12.0, {"a": False, "b": False}) == []
    assert live.observe(13.0, {"a": True, "b": False}) == []
    assert live.observe(14.0, {"a": True, "b": False}) == ["b"]


def test_a_dead_node_seen_again_is_alive_and_forget_drops_it() -> None:
    live = Liveness(confirm=1.0)
    live.observe(0.0, {"a": False})
    live.observe(1.0, {"a": False})
    assert live.dead("a")
    live.observe(2.0, {"a": True})
    assert not live.dead("a")
    live.observe(3.0, {"a": False})
    live.forget("a")
    assert live.observe(3.5, {"a": False}) == []  # suspected anew from here
