"""Admission counting (anywire/core/admission.py): session caps per node, user and IP,
held ticket slots, and the per-IP negotiate bucket. Time is passed in."""

from __future__ import annotations

from anywire.core.admission import Admission, Refusal, ip_key
from anywire.core.settings import Settings


def admission(**overrides: float) -> Admission:
    return Admission(Settings(**overrides))  # type: ignore[arg-type]


def test_ip_keys_group_an_ipv6_host_by_its_64() -> None:
    assert ip_key("203.0.113.7") == "203.0.113.7"
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert ip_key(None) is None
    assert ip_key("") is None


def test_negotiate_rate_per_ip_refuses_with_429_and_the_wait() -> None:
    a = admission(negotiate_rate=10, negotiate_burst=5)
    assert all(a.negotiate("1.1.1.1", 0.0) is None for _ in range(5))
    refusal = a.negotiate("1.1.1.1", 0.0)
    assert refusal == Refusal(429, 4008, 1, "too many negotiations from this address")
    assert a.negotiate("2.2.2.2", 0.0) is None  # another address has its own bucket
    assert a.negotiate("1.1.1.1", 0.1) is None  # one token back after 1/rate seconds
    assert a.negotiate("1.1.1.1", 0.1) is not None
    assert a.negotiate(None, 0.1) is None  # no address (a Unix socket): not limited


def test_retry_after_of_a_slow_rate_is_the_time_to_the_next_token() -> None:
    a = admission(negotiate_rate=0.25, negotiate_burst=1)
    assert a.negotiate("1.1.1.1", 0.0) is None
    refusal = a.negotiate("1.1.1.1", 0.0)
    assert refusal is not None and refusal.retry_after == 4


def test_full_buckets_are_forgotten() -> None:
    a = admission(negotiate_rate=10, negotiate_burst=5)
    for i in range(1000):
        a.negotiate(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert a.counts()["admission_buckets"] == 1000
    a.negotiate("1.1.1.1", 10.0)  # every bucket refilled long ago
    assert a.counts()["admission_buckets"] == 1


def test_per_user_cap_counts_held_tickets_and_sessions() -> None:
    a = admission(max_sessions_per_user=2, busy_retry_after=3)
    assert a.check("ann", "1.1.1.1") is None
    a.hold("n1", "ann", "1.1.1.1", until=30)
    a.hold("n2", "ann", "1.1.1.1", until=30)
    refusal = a.check("ann", "1.1.1.1")
    assert refusal == Refusal(503, 4000, 3, "too many sessions for this user")
    assert a.check("bob", "1.1.1.1") is None
    a.opened("s1", "n1", "ann")  # the held slot becomes the session's
    assert a.check("ann", "1.1.1.1") is not None
    a.closed("s1")
    assert a.check("ann", "1.1.1.1") is None  # the count drops when the session ends
    assert len(a) == 1


def test_held_slots_expire_with_their_tickets() -> None:
    a = admission(max_sessions_per_user=1)
    a.hold("n1", "ann", None, until=30)
    a.negotiate("1.1.1.1", 10.0)
    assert a.check("ann", None) is not None
    a.negotiate("1.1.1.1", 31.0)  # the ticket expired unredeemed
    assert a.check("ann", None) is None
    a.opened("s1", "n1", "ann")  # redeemed late (another node's ticket): a slot anyway
    assert a.check("ann", None) is not None
    a.closed("s1")
    assert len(a) == 0


def test_per_ip_and_per_node_caps() -> None:
    a = admission(max_sessions_per_ip=2, max_sessions=3)
    a.hold("n1", "u1", "1.1.1.1", 30)
    a.hold("n2", "u2", "1.1.1.1", 30)
    assert a.check("u3", "1.1.1.1") == Refusal(503, 4000, 5, "too many sessions from this address")
    assert a.check("u3", "2.2.2.2") is None
    a.hold("n3", "u3", "2.2.2.2", 30)
    assert a.check("u4", "3.3.3.3") == Refusal(503, 4000, 5, "server at its session limit")


def test_a_session_replaced_under_its_sid_keeps_one_slot() -> None:
    a = admission(max_sessions_per_user=2)
    a.hold("n1", "ann", "1.1.1.1", 30)
    a.opened("s1", "n1", "ann")
    a.hold("n2", "ann", "1.1.1.1", 30)
    a.opened("s1", "n2", "ann")  # a fresh session under the same sid
    assert len(a) == 1
    assert a.check("ann", "1.1.1.1") is None
    a.closed("s1")
    a.closed("s1")  # twice is harmless
    assert len(a) == 0


def test_a_ticket_of_another_node_is_checked_when_its_session_starts() -> None:
    a = admission(max_sessions_per_user=1, max_sessions=2)
    assert a.opened("s1", "elsewhere-1", "ann") is None  # no slot held here: checked, counted
    refusal = a.opened("s2", "elsewhere-2", "ann")
    assert refusal is not None and (refusal.status, refusal.code) == (503, 4000)
    assert len(a) == 1  # the refused one is not counted
    assert a.opened("s3", "elsewhere-3", "bob") is None
    assert a.opened("s4", "elsewhere-4", "cy") is not None  # the node is full
    a.closed("s1")
    assert a.opened("s2", "elsewhere-2", "ann") is None
