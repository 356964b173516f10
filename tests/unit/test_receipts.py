"""The client's receipt rule (protocol section 6.4): a drawn count, bytes and time, as the
server advertises it; every 16 frames when it advertises nothing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from anywire.clients.python.wire import Negotiated
from anywire.core.frames import Event, Hello, Rx
from anywire.core.peer import ClientPeer
from anywire.core.receipts import LEGACY, RxRule
from anywire.core.settings import Settings

RULE = RxRule(frames=64, bytes=1000, ms=1000)


def peer_with(rule: RxRule, *draws: float) -> ClientPeer:
    """A peer following ``rule`` whose draws are ``draws``, in turn (then the last)."""
    values = list(draws)

    def draw() -> float:
        return values.pop(0) if len(values) > 1 else values[0]

    peer = ClientPeer(draw=draw)
    peer.set_rx_rule(rule)
    return peer


def frames_until_rx(peer: ClientPeer, limit: int = 1000) -> int:
    """Feed events until the peer owes a receipt; how many it took."""
    for k in range(1, limit + 1):
        peer.receive(Event(peer.in_last + 1, "n"))
        if peer.rx_due() is not None:
            return k
    raise AssertionError(f"no rx after {limit} frames")


def test_the_threshold_is_drawn_afresh_after_every_receipt_within_half_to_all() -> None:
    peer = ClientPeer(draw=random.Random(7).random)
    peer.set_rx_rule(RxRule(frames=64))
    gaps = [frames_until_rx(peer) for _ in range(300)]
    assert min(gaps) >= 32 and max(gaps) <= 64
    assert len(set(gaps)) >= 25  # spread over the range, not one fixed count
    assert min(gaps) == 32 and max(gaps) == 64  # both ends are reachable


@pytest.mark.parametrize(("draw", "threshold"), [(0.0, 32), (0.5, 48), (0.999999, 64)])
def test_the_draw_maps_uniformly_onto_the_integers_of_the_range(
    draw: float, threshold: int
) -> None:
    assert frames_until_rx(peer_with(RxRule(frames=64), draw)) == threshold


def test_an_odd_limit_rounds_its_half_up() -> None:
    peer = peer_with(RxRule(frames=5), 0.0)
    assert frames_until_rx(peer) == 3


def test_a_room_of_clients_spreads_its_receipts_over_events() -> None:
    """The point of the draw: 1,000 clients receiving the same events do not all send
    their receipt on the same one (with a fixed 16, every one of them did)."""
    peers = [ClientPeer(draw=random.Random(seed).random) for seed in range(1000)]
    for p in peers:
        p.set_rx_rule(RxRule(frames=64))
    per_event: Counter[int] = Counter()
    for s in range(1, 257):
        for p in peers:
            p.receive(Event(s, "n"))
            if p.rx_due() is not None:
                per_event[s] += 1
    assert sum(per_event.values()) >= 1000 * 256 // 64
    assert max(per_event.values()) <= 100  # about 1000 / 33 on average, never a room


def test_the_byte_limit_makes_a_receipt_due_before_the_count() -> None:
    peer = peer_with(RULE, 0.999999)  # u = 1: 64 frames, 1000 bytes
    peer.receive(Event(1, "n"))
    peer.received_bytes(600)
    assert peer.rx_due() is None
    peer.receive(Event(2, "n"))
    peer.received_bytes(400)
    assert peer.rx_due() == Rx(2)
    peer.receive(Event(3, "n"))
    peer.received_bytes(999)  # counted afresh since the receipt
    assert peer.rx_due() is None


def test_the_byte_limit_is_scaled_with_the_drawn_count() -> None:
    peer = peer_with(RULE, 0.0)  # u = 1/2: 32 frames, 500 bytes
    peer.receive(Event(1, "n"))
    peer.received_bytes(499)
    assert peer.rx_due() is None
    peer.received_bytes(1)
    assert peer.rx_due() == Rx(1)


def test_the_time_limit_acknowledges_the_tail_of_a_burst() -> None:
    peer = peer_with(RULE, 0.999999)  # u = 1: 1 s
    assert peer.rx_deadline() is None
    peer.receive(Event(1, "n"))
    assert peer.rx_due(now=10.0) is None
    assert peer.rx_deadline() == 11.0
    peer.receive(Event(2, "n"))
    assert peer.rx_due(now=10.6) is None
    assert peer.rx_deadline() == 11.0  # counted from the first frame owed
    assert peer.rx_due(now=11.0) == Rx(2)  # the timer's check: no new message needed
    assert peer.rx_deadline() is None
    assert peer.rx_due(now=50.0) is None  # nothing owed


def test_the_time_limit_is_scaled_with_the_drawn_count() -> None:
    peer = peer_with(RULE, 0.0)  # u = 1/2: 0.5 s
    peer.receive(Event(1, "n"))
    assert peer.rx_due(now=3.0) is None
    assert peer.rx_deadline() == 3.5
    assert peer.rx_due(now=3.5) == Rx(1)


def test_a_pong_receipt_starts_a_new_stretch() -> None:
    peer = peer_with(RULE, 0.999999, 0.0)
    peer.receive(Event(1, "n"))
    peer.received_bytes(900)
    assert peer.rx_due(now=1.0) is None
    assert peer.rx_due(force=True) == Rx(1)  # with a pong
    assert peer.rx_deadline() is None
    peer.receive(Event(2, "n"))
    peer.received_bytes(400)
    assert peer.rx_due(now=1.2) is None  # bytes and time counted afresh (u = 1/2 now)
    assert peer.rx_deadline() == pytest.approx(1.7)


def test_without_an_advertised_rule_the_client_keeps_every_16_frames() -> None:
    answer = {"sid": "s", "token": "t", "ticket": "k", "transports": []}
    neg = Negotiated.parse(answer)
    assert neg.rx == LEGACY
    peer = peer_with(neg.rx, 0.0)  # the draw is not used
    assert [frames_until_rx(peer) for _ in range(3)] == [16, 16, 16]
    peer.receive(Event(peer.in_last + 1, "n"))
    peer.received_bytes(10**9)
    assert peer.rx_due(now=0.0) is None and peer.rx_due(now=1e9) is None  # no byte or time rule
    assert peer.rx_deadline() is None


def test_a_new_peer_follows_the_old_rule_until_told_otherwise() -> None:
    peer = ClientPeer()
    assert frames_until_rx(peer) == 16


def test_negotiate_answer_gives_the_rule() -> None:
    answer = {"sid": "s", "token": "t", "ticket": "k", "transports": [],
              "rx": {"frames": 40, "bytes": 5000, "ms": 300}}  # fmt: skip
    assert Negotiated.parse(answer).rx == RxRule(40, 5000, 300)


@pytest.mark.parametrize(
    "bad",
    [None, 16, [], {}, {"frames": 0}, {"frames": -1}, {"frames": True}, {"frames": 1.5},
     {"frames": 8, "bytes": -1}, {"frames": 8, "ms": "1"}],
)  # fmt: skip
def test_a_malformed_rule_falls_back_to_the_old_one(bad: object) -> None:
    assert RxRule.from_wire(bad) == LEGACY


def test_absent_limits_mean_none() -> None:
    rule = RxRule.from_wire({"frames": 8})
    assert rule == RxRule(8, 0, 0)
    peer = peer_with(rule, 0.999999)
    peer.receive(Event(1, "n"))
    peer.received_bytes(10**9)
    assert peer.rx_due(now=0.0) is None and peer.rx_due(now=1e9) is None
    assert frames_until_rx(peer) == 7  # 8 in all


def test_the_server_derives_the_rule_from_its_outbox() -> None:
    assert Settings().client_rx() == RxRule(250, 256 * 1024, 5000)
    small = Settings(outbox_size=40, outbox_bytes=4000, rx_wait=0.25)
    assert small.client_rx() == RxRule(10, 1000, 250)
    assert Settings(outbox_size=1, outbox_bytes=1).client_rx() == RxRule(1, 1, 5000)
    assert Settings().client_rx().to_wire() == {"frames": 250, "bytes": 262144, "ms": 5000}
    with pytest.raises(ValueError):
        Settings(rx_wait=0)


def test_a_fresh_hello_starts_a_new_stretch() -> None:
    peer = peer_with(RULE, 0.999999)
    peer.receive(Event(1, "n"))
    peer.received_bytes(900)
    assert peer.rx_due(now=5.0) is None
    peer.on_hello(Hello("sid", False, 7, 0))
    assert peer.rx_deadline() is None
    peer.receive(Event(8, "n"))
    peer.received_bytes(900)
    assert peer.rx_due(now=6.0) is None  # neither the old bytes nor the old time count
