"""ServerSession: sequencing, outbox, resume, dedupe, heartbeats, expiry, flood control.

Time is a plain float passed as ``now``; nothing here sleeps or needs an event loop.
"""

from __future__ import annotations

from typing import Any

import pytest

from anywire.core.closecodes import CloseCode
from anywire.core.codec import Outgoing
from anywire.core.errors import LocalProtocolError, RemoteProtocolError
from anywire.core.flood import FloodError
from anywire.core.frames import (
    Ack,
    Close,
    Connect,
    Event,
    Hello,
    Join,
    Leave,
    Ping,
    Pong,
    Resume,
    Rx,
)
from anywire.core.session import Heartbeat, ServerSession, SessionAction, SessionState
from anywire.core.settings import Settings
from anywire.core.streams import Lost
from tests.unit.conftest import make_codec

WS = Heartbeat(ping_interval=20.0, dead_after=30.0)
POLL = Heartbeat(ping_interval=None, dead_after=45.0)


def make(now: float = 0.0, **overrides: Any) -> ServerSession:
    return ServerSession("sid", "user", "/", Settings(**overrides), now)


def attached(now: float = 0.0, heartbeat: Heartbeat = WS, **overrides: Any) -> ServerSession:
    sess = make(now, **overrides)
    sess.attach(object(), now, heartbeat, None)
    return sess


def out(i: int) -> Outgoing:
    return Outgoing("event", {"e": "n", "d": i})


def pushed(sess: ServerSession, n: int) -> list[int]:
    return [sess.push(out(i)) for i in range(n)]


def data(taken: list[tuple[int, Outgoing]]) -> list[tuple[int, Any]]:
    return [(seq, o.fields["d"]) for seq, o in taken]


def events(first: int, last: int) -> list[Event]:
    return [Event(s, "c", s) for s in range(first, last + 1)]


# -- sequencing and the outbox --------------------------------------------------------------


def test_push_assigns_consecutive_sequence_numbers() -> None:
    sess = attached()
    assert pushed(sess, 3) == [1, 2, 3]
    assert sess.out_seq == 3
    assert [seq for seq, _ in sess.outbox] == [1, 2, 3]


def test_take_pending_hands_each_frame_once_in_order() -> None:
    sess = attached()
    pushed(sess, 5)
    assert data(sess.take_pending(limit=2)) == [(1, 0), (2, 1)]
    assert data(sess.take_pending()) == [(3, 2), (4, 3), (5, 4)]
    assert sess.take_pending() == []
    sess.push(out(9))
    assert data(sess.take_pending()) == [(6, 9)]
    # Still kept for replay until acknowledged.
    assert len(sess.outbox) == 6


def test_take_next_takes_only_the_one_new_frame_as_take_pending_would() -> None:
    sess = attached()
    assert sess.take_next() is None  # nothing pushed
    sess.push(out(0))
    item = sess.take_next()
    assert item is not None and item.fields["d"] == 0 and sess.written == 1
    assert sess.take_next() is None and sess.take_pending() == []  # given once
    pushed(sess, 2)  # two pending: not its case, and it takes nothing
    assert sess.take_next() is None and sess.written == 1
    assert data(sess.take_pending()) == [(2, 0), (3, 1)]
    assert len(sess.outbox) == 3  # still kept for replay


def test_take_next_takes_nothing_unattached_or_past_a_gap() -> None:
    sess = make()
    sess.push(out(0))
    assert sess.take_next() is None and sess.written == 0  # before the hello
    small = attached(outbox_size=2)
    pushed(small, 4)  # written 0, floor 3: frames 1-2 are gone, never given
    small.written = 2
    small.push(out(9))  # frames 3-5 pending, 3 dropped already: take_pending's gap case
    assert small.take_next() is None and small.written == 2
    detached = attached()
    detached.detach(detached.connection, 1.0)
    detached.push(out(0))
    assert detached.take_next() is None


def _model_pending(
    sess: ServerSession, limit: int | None, max_bytes: int | None
) -> list[tuple[int, Any]]:
    """What take_pending must hand out, from the outbox as a list (the rule, slowly)."""
    if sess.state is not SessionState.ATTACHED or sess.written < sess.floor - 1:
        return []
    pending = [(seq, o) for seq, o in sess.outbox if seq > sess.written]
    if limit is not None:
        pending = pending[:limit]
    if max_bytes is not None:
        total, kept = 0, []
        for seq, o in pending:
            total += o.size
            if total > max_bytes and kept:
                break
            kept.append((seq, o))
        pending = kept
    return data(pending)


def test_take_run_hands_the_frames_take_pending_numbers_from_written_plus_one() -> None:
    # Every limit and byte cap, from the outbox's start, middle or a trimmed start: the
    # frames the rule says, in order, numbered from written + 1; written moves past them.
    for limit in (None, 0, 1, 2, 3, 10):
        for max_bytes in (None, 1, 50, 10_000):
            for acked, given in ((0, 0), (0, 2), (3, 3), (2, 4), (0, 5), (4, 6), (7, 7)):
                sess = attached()
                for i in range(7):
                    item = out(i)
                    item.size = 20 + i
                    sess.push(item)
                sess.acknowledge(acked)  # the outbox starts further on
                sess.written = given  # some already given: the run is from the middle
                expected = _model_pending(sess, limit, max_bytes)
                first = sess.written + 1
                run = sess.take_run(limit, max_bytes)
                assert data([(first + i, item) for i, item in enumerate(run)]) == expected
                assert sess.written == (expected[-1][0] if expected else given)
                sess.written = given
                assert data(sess.take_pending(limit, max_bytes)) == expected
    sess = attached()
    pushed(sess, 5)
    assert [o.fields["d"] for o in sess.take_run(limit=2)] == [0, 1] and sess.written == 2
    assert [o.fields["d"] for o in sess.take_run()] == [2, 3, 4] and sess.written == 5
    assert sess.take_run() == []


def test_acknowledge_drops_a_few_or_most_frames_and_their_bytes() -> None:
    sess = attached()
    for i in range(10):
        item = out(i)
        item.size = 10 + i
        sess.push(item)
    sess.take_pending()
    sess.acknowledge(3)  # a few: dropped from the front
    assert [seq for seq, _ in sess.outbox] == list(range(4, 11))
    assert sess.outbox_bytes == sum(10 + i for i in range(3, 10)) and sess.floor == 4
    sess.acknowledge(9)  # most: the rest kept
    assert [seq for seq, _ in sess.outbox] == [10] and sess.outbox_bytes == 19
    sess.acknowledge(9)  # again: nothing changes
    assert [seq for seq, _ in sess.outbox] == [10] and sess.outbox_bytes == 19
    sess.acknowledge(10)
    assert sess.outbox == [] and sess.outbox_bytes == 0 and sess.floor == 11
    sess.push(out(99))  # the outbox goes on after being emptied
    assert [seq for seq, _ in sess.outbox] == [11] and sess.take_next() is not None


def test_take_run_keeps_the_byte_cap_but_always_hands_the_first_frame() -> None:
    sess = attached()
    for i in range(4):
        item = out(i)
        item.size = 100
        sess.push(item)
    assert [o.fields["d"] for o in sess.take_run(max_bytes=250)] == [0, 1]
    assert [o.fields["d"] for o in sess.take_run(max_bytes=50)] == [2]  # over on its own
    assert [o.fields["d"] for o in sess.take_run(max_bytes=400)] == [3]
    assert sess.written == 4


def test_take_run_sums_the_run_against_the_cap_only_when_the_outbox_is_over_it() -> None:
    # The outbox holds frames given but not acknowledged: over the cap as a whole while
    # the new run is within it (taken whole), or within it (no sum: taken whole too).
    sess = attached()
    for i in range(6):
        item = out(i)
        item.size = 100
        sess.push(item)
        if i == 3:
            assert len(sess.take_run(max_bytes=1000)) == 4  # outbox 400 <= cap
    assert sess.outbox_bytes == 600
    assert [o.fields["d"] for o in sess.take_run(max_bytes=250)] == [4, 5]  # outbox 600 > cap
    for i in range(6, 9):
        item = out(i)
        item.size = 100
        sess.push(item)
    assert [o.fields["d"] for o in sess.take_run(max_bytes=250)] == [6, 7]  # run 300 > cap
    assert [o.fields["d"] for o in sess.take_run(max_bytes=250)] == [8]


def test_acknowledge_keeps_outbox_bytes_the_sum_of_the_sizes_kept() -> None:
    # Against the sum of what stays, for every acknowledgement from none to all, from
    # outboxes of every length up to 9 (the copy branch sums the rest, the other the drop).
    for length in range(1, 10):
        for n in range(0, length + 1):
            sess = attached()
            for i in range(length):
                item = out(i)
                item.size = 7 + 3 * i
                sess.push(item)
            sess.take_pending()
            sess.acknowledge(n)
            kept = [o for _, o in sess.outbox]
            assert len(kept) == length - n
            assert sess.outbox_bytes == sum(o.size for o in kept), (length, n)


def test_take_run_takes_nothing_unattached_or_past_a_gap() -> None:
    sess = make()
    pushed(sess, 2)
    assert sess.take_run() == [] and sess.written == 0  # before the hello
    small = attached(outbox_size=2)
    pushed(small, 4)  # frames 1-2 dropped, never given: a gap
    assert small.take_run() == [] and small.written == 0


def test_nothing_is_taken_before_attach_and_early_frames_follow_the_hello() -> None:
    sess = make()
    pushed(sess, 2)  # e.g. by a connect hook
    assert sess.take_pending() == []
    hello = sess.attach(object(), 0.0, WS, None)
    assert hello == Hello(sid="sid", recovered=False, seq=0, last=0)
    assert data(sess.take_pending()) == [(1, 0), (2, 1)]


def test_rx_trims_the_outbox() -> None:
    sess = attached()
    pushed(sess, 5)
    sess.take_pending()
    assert sess.receive(Rx(3), 1.0) is None
    assert [seq for seq, _ in sess.outbox] == [4, 5]
    assert sess.floor == 4
    sess.receive(Rx(2), 1.0)  # an old, smaller rx changes nothing
    assert [seq for seq, _ in sess.outbox] == [4, 5]
    sess.receive(Rx(5), 1.0)
    assert not sess.outbox


def test_rx_ahead_of_what_was_sent_is_refused() -> None:
    sess = attached()
    pushed(sess, 2)
    with pytest.raises(RemoteProtocolError):
        sess.receive(Rx(3), 1.0)


def test_rewind_hands_unacknowledged_frames_out_again() -> None:
    """Long-poll: a response may be lost, so the next poll's ack=N decides what is resent."""
    sess = attached(heartbeat=POLL)
    pushed(sess, 4)
    sess.take_pending()
    sess.rewind(1)
    assert data(sess.take_pending()) == [(2, 1), (3, 2), (4, 3)]
    sess.rewind(4)
    assert sess.take_pending() == [] and not sess.outbox


def test_a_late_poll_with_an_older_ack_does_not_rewind_past_the_acknowledged() -> None:
    # Found by the state-machine fuzz (issue #13): written fell below floor - 1, and the
    # next push looked like an overflow to the host, which closed the connection (4002).
    sess = attached(heartbeat=POLL)
    pushed(sess, 3)
    sess.take_pending()
    sess.rewind(2)
    sess.rewind(0)  # an older poll, answered late
    assert sess.written >= sess.floor - 1
    assert data(sess.take_pending()) == [(3, 2)]


def test_an_ack_of_frames_not_yet_given_leaves_none_of_them_pending() -> None:
    # Found by the state-machine fuzz: the same gap, from an rx or ack= ahead of written.
    sess = attached(heartbeat=POLL)
    pushed(sess, 3)
    sess.receive(Rx(2), 1.0)
    assert sess.written == 2 and data(sess.take_pending()) == [(3, 2)]


def test_outbox_overflow_drops_oldest_and_raises_floor() -> None:
    sess = attached(outbox_size=3)
    pushed(sess, 5)
    assert [seq for seq, _ in sess.outbox] == [3, 4, 5]
    assert sess.floor == 3
    # The connection was given nothing yet: frames 1-2 are gone (the host closes 4002).
    assert sess.written < sess.floor - 1
    # ... and nothing past the gap is ever handed out: the client would take frame 3
    # for frame 1's successor.
    assert sess.take_pending() == []
    assert sess.written < sess.floor - 1


def test_outbox_overflow_only_after_acknowledged_frames_is_harmless() -> None:
    sess = attached(outbox_size=3)
    pushed(sess, 3)
    sess.take_pending()
    sess.receive(Rx(3), 1.0)
    pushed(sess, 3)
    assert sess.written >= sess.floor - 1
    assert data(sess.take_pending()) == [(4, 0), (5, 1), (6, 2)]


# -- resume ---------------------------------------------------------------------------------


def test_resume_replays_exactly_the_frames_after_last() -> None:
    codec = make_codec("msgpack")
    sess = make()
    conn1 = object()
    sess.attach(conn1, 0.0, WS, None)
    pushed(sess, 6)
    first = [codec.frame(o.type, s, o.body(codec)) for s, o in sess.take_pending()]
    sess.receive(Rx(2), 1.0)
    assert sess.detach(conn1, 2.0)
    sess.push(out(99))  # pushed while nobody is connected
    assert sess.can_resume(4)
    hello = sess.attach(object(), 3.0, WS, last=4)
    assert hello == Hello(sid="sid", recovered=True, seq=4, last=0)
    replay = [codec.frame(o.type, s, o.body(codec)) for s, o in sess.take_pending()]
    assert replay == [*first[4:], codec.encode({"t": "event", "s": 7, "e": "n", "d": 99})]
    assert [seq for seq, _ in sess.outbox] == [5, 6, 7]  # resume point acknowledged


@pytest.mark.parametrize("last", [0, 1, 8])
def test_can_resume_only_from_inside_the_outbox(last: int) -> None:
    sess = attached()
    pushed(sess, 7)
    sess.take_pending()
    sess.receive(Rx(2), 1.0)  # floor is now 3: the client confirmed 1-2
    assert not sess.can_resume(last)
    with pytest.raises(LocalProtocolError):
        sess.attach(object(), 2.0, WS, last)


@pytest.mark.parametrize("last", [2, 3, 7])
def test_can_resume_inside_the_outbox(last: int) -> None:
    sess = attached()
    pushed(sess, 7)
    sess.receive(Rx(2), 1.0)
    assert sess.can_resume(last)


def test_can_resume_is_false_after_outbox_overflow() -> None:
    sess = make(outbox_size=4)
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    pushed(sess, 2)
    sess.take_pending()
    sess.detach(conn, 1.0)
    assert sess.can_resume(0)
    pushed(sess, 4)  # 6 frames, room for 4: frames 1-2 are gone
    assert not sess.can_resume(0)
    assert not sess.can_resume(1)
    assert sess.can_resume(2)


def test_resume_with_nothing_sent() -> None:
    sess = make()
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    sess.detach(conn, 1.0)
    assert sess.can_resume(0)
    assert sess.attach(object(), 2.0, WS, 0) == Hello("sid", True, 0, 0)
    assert sess.take_pending() == []


def test_hello_reports_the_last_client_frame_processed() -> None:
    sess = make()
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    for ev in events(1, 3):
        sess.receive(ev, 1.0)
    sess.detach(conn, 2.0)
    assert sess.attach(object(), 3.0, WS, 0).last == 3


# -- attach / detach -------------------------------------------------------------------------


def test_detach_and_attach_state_machine() -> None:
    sess = make()
    assert sess.state is SessionState.NEW
    a, b, c = object(), object(), object()
    sess.attach(a, 0.0, WS, None)
    assert sess.state is SessionState.ATTACHED and sess.connection is a
    assert not sess.detach(b, 1.0)  # not the live connection
    assert sess.state is SessionState.ATTACHED
    assert sess.detach(a, 1.0)
    assert sess.state is SessionState.DETACHED and sess.connection is None
    assert sess.detached_at == 1.0
    assert not sess.detach(a, 1.5)  # twice
    sess.attach(b, 2.0, WS, 0)
    assert sess.state is SessionState.ATTACHED and sess.detached_at is None
    # A newer connection takes over while attached; the old one's end changes nothing.
    sess.attach(c, 3.0, WS, 0)
    assert sess.connection is c
    assert not sess.detach(b, 4.0)
    assert sess.state is SessionState.ATTACHED


def test_a_returning_connection_must_resume() -> None:
    sess = make()
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    sess.detach(conn, 1.0)
    with pytest.raises(LocalProtocolError):
        sess.attach(object(), 2.0, WS, None)


def test_detach_makes_unacknowledged_frames_pending_again() -> None:
    sess = make()
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    pushed(sess, 4)
    sess.take_pending()
    sess.receive(Rx(1), 0.5)
    sess.detach(conn, 1.0)
    assert sess.written == 1
    sess.attach(object(), 2.0, WS, 1)
    assert [s for s, _ in sess.take_pending()] == [2, 3, 4]


def test_takeover_resume_replays_what_the_old_connection_may_have_lost() -> None:
    sess = attached()
    pushed(sess, 3)
    sess.take_pending()
    hello = sess.attach(object(), 1.0, WS, 1)  # new connection while the old is live
    assert hello.recovered and hello.seq == 1
    assert [s for s, _ in sess.take_pending()] == [2, 3]


def test_closed_session_refuses_everything() -> None:
    sess = attached()
    pushed(sess, 2)
    sess.close()
    assert sess.state is SessionState.CLOSED
    assert not sess.outbox and sess.connection is None
    assert not sess.can_resume(0) and not sess.can_resume(2)
    assert sess.take_pending() == []
    assert sess.next_deadline() is None
    assert sess.poll(1e9) == []
    with pytest.raises(LocalProtocolError):
        sess.push(out(1))
    with pytest.raises(LocalProtocolError):
        sess.attach(object(), 1.0, WS, 2)


# -- inbound ---------------------------------------------------------------------------------


def test_client_frames_in_order_are_returned() -> None:
    sess = attached()
    frames = [Event(1, "a"), Join(2, 1, "r"), Leave(3, 2, "r"), Ack(4, 1, True)]
    assert [sess.receive(f, 1.0) for f in frames] == frames
    assert sess.in_last == 4


def test_duplicate_client_frames_are_dropped() -> None:
    sess = attached()
    for ev in events(1, 3):
        assert sess.receive(ev, 1.0) is ev
    assert sess.receive(Event(2, "c", 2), 1.0) is None
    assert sess.receive(Event(3, "c", 3), 1.0) is None
    assert sess.receive(Event(1, "other"), 1.0) is None
    assert sess.in_last == 3
    assert sess.receive(Event(4, "c"), 1.0) is not None


@pytest.mark.parametrize(("before", "sent"), [(0, 2), (1, 3), (3, 9)])
def test_sequence_gap_is_a_protocol_error(before: int, sent: int) -> None:
    sess = attached()
    for ev in events(1, before):
        sess.receive(ev, 1.0)
    with pytest.raises(RemoteProtocolError) as info:
        sess.receive(Event(sent, "a"), 1.0)
    assert sess.in_last == before
    assert info.value.code == CloseCode.BAD_REQUEST
    assert "gap" in info.value.message


def test_ping_from_client_queues_a_pong() -> None:
    sess = attached()
    assert sess.receive(Ping(), 1.0) is None
    assert sess.take_control() == [Pong()]
    assert sess.take_control() == []


def test_close_from_client_is_returned_for_the_host() -> None:
    sess = attached()
    frame = Close(4500, "bye")
    assert sess.receive(frame, 1.0) is frame


@pytest.mark.parametrize(
    "frame", [Connect("t"), Resume("t", 0), Hello("s", True, 0, 0)], ids=lambda f: f.type
)
def test_handshake_frames_are_refused_mid_session(frame: Any) -> None:
    sess = attached()
    with pytest.raises(RemoteProtocolError):
        sess.receive(frame, 1.0)


def test_rx_is_due_on_its_own_every_16_client_frames() -> None:
    sess = attached()
    for ev in events(1, 15):
        sess.receive(ev, 1.0)
        assert not sess.rx_due()
    sess.receive(Event(16, "c"), 1.0)
    assert sess.rx_due()
    assert sess.take_control() == [Rx(16)]
    assert not sess.rx_due()
    for ev in events(17, 31):
        sess.receive(ev, 1.0)
    assert not sess.rx_due()
    sess.receive(Event(32, "c"), 1.0)
    assert sess.rx_due()
    assert sess.take_control() == [Rx(32)]


def test_rx_rides_along_with_every_write() -> None:
    sess = attached()
    assert sess.take_control() == []  # nothing processed: no rx
    for ev in events(1, 3):
        sess.receive(ev, 1.0)
    sess.receive(Ping(), 1.0)
    assert set(sess.take_control()) == {Pong(), Rx(3)}
    assert sess.take_control() == []  # nothing new since
    sess.receive(Event(3, "c"), 1.0)  # a duplicate advances nothing
    assert sess.take_control() == []


def test_writers_get_the_receipt_as_a_number_after_the_control_frames() -> None:
    sess = attached()
    assert sess.take_output_control() == ((), None)
    for ev in events(1, 3):
        sess.receive(ev, 1.0)
    assert sess.take_output_control() == ((), 3)
    assert sess.take_output_control() == ((), None)  # given once
    sess.receive(Event(4, "c"), 1.0)
    sess.receive(Ping(), 1.0)
    control, receipt = sess.take_output_control()
    assert list(control) == [Pong()] and receipt == 4
    assert sess.rx_owed_since is None and not sess.rx_due()


def test_rx_counts_from_the_hello() -> None:
    """hello.last already told the client what was processed: no rx is owed for it."""
    sess = make()
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    for ev in events(1, 10):
        sess.receive(ev, 1.0)
    sess.detach(conn, 2.0)
    assert sess.attach(object(), 3.0, WS, 0).last == 10
    assert sess.take_control() == []
    for ev in events(11, 25):
        sess.receive(ev, 4.0)
    assert not sess.rx_due()
    sess.receive(Event(26, "c"), 4.0)
    assert sess.rx_due()
    assert sess.take_control() == [Rx(26)]


def test_skip_consumes_only_the_next_sequence_number() -> None:
    """An invalid client frame that still had its ``s`` is counted as consumed, so the
    frames after it are not refused as a gap."""
    sess = attached()
    for ev in events(1, 2):
        sess.receive(ev, 1.0)
    assert not sess.skip(4)
    assert not sess.skip(2)
    assert sess.in_last == 2
    assert sess.skip(3)
    assert sess.in_last == 3
    assert sess.receive(Event(3, "c"), 1.0) is None  # the skipped number is spent
    assert sess.receive(Event(4, "c"), 1.0) is not None


def test_flood_is_refused_with_4008_and_the_session_kept() -> None:
    sess = attached(flood_rate=10.0, flood_burst=5)
    for _ in range(5):
        sess.charge(0.0)
    with pytest.raises(FloodError) as info:
        sess.charge(0.0)
    assert info.value.code == CloseCode.FLOOD == 4008
    # The refusal was charged too (debt of one): two tokens to refill at 10/s.
    assert info.value.retry_after == pytest.approx(0.2)
    assert sess.state is SessionState.ATTACHED  # refused, not ended


def test_flood_bucket_refills_at_the_rate_and_caps_at_the_burst() -> None:
    sess = attached(flood_rate=10.0, flood_burst=5)
    for _ in range(5):
        sess.charge(0.0)
    sess.charge(0.1)  # one token back after 0.1 s at 10/s
    with pytest.raises(FloodError):
        sess.charge(0.1)
    # A long quiet spell refills at most ``burst`` tokens.
    for _ in range(5):
        sess.charge(1000.0)
    with pytest.raises(FloodError):
        sess.charge(1000.0)


def test_a_message_is_paid_whole_or_refused_whole() -> None:
    sess = attached(flood_rate=10.0, flood_burst=5)
    sess.charge(0.0, 3)
    with pytest.raises(FloodError) as info:
        sess.charge(0.0, 3)  # 2 tokens left: refused whole, and charged: 1 in debt
    assert info.value.retry_after == pytest.approx(0.4)  # 4 tokens at 10/s
    sess.charge(0.4, 3)  # paid after its Retry-After
    # A batch larger than the whole budget costs the whole budget (else never sendable).
    sess.charge(10.0, 50)
    with pytest.raises(FloodError):
        sess.charge(10.0)


def test_a_client_ignoring_retry_after_stays_refused() -> None:
    """Refusals are charged (down to -burst): asking again at once, faster than the rate
    refills, never gets through, however long it goes on."""
    sess = attached(flood_rate=10.0, flood_burst=5)
    for _ in range(5):
        sess.charge(0.0)
    for i in range(1, 1000):
        with pytest.raises(FloodError):
            sess.charge(i * 0.05)  # 20 a second against a refill of 10
    # The debt is bounded: a client that then waits gets back in within burst/rate * 2.
    sess.charge(1000 * 0.05 + 1.0)


def test_sustained_rate_below_the_limit_is_fine() -> None:
    sess = attached(flood_rate=10.0, flood_burst=2)
    for i in range(1000):
        sess.charge(i * 0.11)


# -- timers ----------------------------------------------------------------------------------


def test_ping_scheduling() -> None:
    sess = attached(now=100.0)
    assert sess.next_deadline() == 120.0
    assert sess.poll(119.9) == []
    assert sess.poll(120.0) == [SessionAction("ping")]
    assert sess.take_control() == [Ping()]
    # Next: the earlier of the next ping (140) and silence since 100 (130).
    assert sess.next_deadline() == 130.0
    sess.receive(Pong(), 125.0)
    assert sess.next_deadline() == 140.0
    assert sess.poll(139.0) == []
    assert sess.poll(140.0) == [SessionAction("ping")]
    assert sess.poll(140.0) == []  # not twice


def test_owed_rx_is_flushed_after_ack_delay_when_nothing_carries_it() -> None:
    sess = attached()  # ack_delay is 0.1 s by default
    for ev in events(1, 3):
        sess.receive(ev, 1.0)
    assert sess.next_deadline() is not None and sess.next_deadline() <= 1.1 + 1e-9
    assert sess.poll(1.05) == []
    assert sess.poll(1.2) == [SessionAction("flush")]
    assert sess.take_control() == [Rx(3)]
    assert sess.poll(20.0) == [SessionAction("ping")]
    assert sess.take_control() == [Ping()]  # nothing new to acknowledge


def test_rx_riding_along_a_write_cancels_the_flush() -> None:
    sess = attached()
    sess.receive(events(1, 1)[0], 1.0)
    assert sess.take_control() == [Rx(1)]  # a write happened: the rx went with it
    assert sess.poll(1.2) == []


def test_ping_carries_an_rx_owed_at_the_same_moment() -> None:
    sess = attached()
    for ev in events(1, 3):
        sess.receive(ev, 19.95)
    assert sess.poll(20.0) == [SessionAction("ping")]
    assert set(sess.take_control()) == {Rx(3), Ping()}
    sess.receive(Pong(), 21.0)
    sess.poll(40.0)
    assert sess.take_control() == [Ping()]  # nothing new to acknowledge


def test_no_receipt_covers_a_frame_whose_answer_is_still_being_relayed() -> None:
    # A receipt lets the client forget a frame: one whose effect (a call's answer) is
    # still on its way to another node must not be covered, or a crash of this node in
    # between loses the answer with nobody left to send it again.
    sess = attached()
    for ev in events(1, 2):
        sess.receive(ev, 1.0)
    sess.receive(Ack(3, 7, True, "answer"), 1.0)
    sess.relaying(3)
    sess.receive(events(4, 4)[0], 1.0)
    assert sess.take_control() == [Rx(2)]  # up to the relayed frame, not past it
    assert sess.take_control() == []  # nothing more while it is held
    assert sess.poll(1.2) == []  # the owed rx is held too: no flush for nothing
    sess.relayed(3, 2.0)
    assert sess.poll(2.05) == []  # owed again from the release, after ack_delay
    assert sess.poll(2.2) == [SessionAction("flush")]
    assert sess.take_control() == [Rx(4)]


def test_a_held_receipt_is_not_due_and_the_hello_reports_below_it() -> None:
    sess = make()
    conn = object()
    sess.attach(conn, 0.0, WS, None)
    sess.receive(Ack(1, 7, True, None), 1.0)
    sess.relaying(1)
    for ev in events(2, 40):
        sess.receive(ev, 1.0)
    # 40 frames unacknowledged, but a receipt may cover none: a writer asking
    # has_output() after every write must not spin on it.
    assert not sess.rx_due() and not sess.has_output()
    assert sess.poll(1.2) == []  # owed, all of it held: no flush for nothing
    sess.detach(conn, 2.0)
    assert sess.attach(object(), 3.0, WS, 0).last == 0  # the client sends them again
    sess.relayed(1, 4.0)
    assert sess.rx_due() and sess.take_control() == [Rx(40)]


def test_relays_release_receipts_in_sequence_order() -> None:
    sess = attached()
    for s in (1, 2, 3):
        sess.receive(Ack(s, s, True, None), 1.0)
    sess.relaying(3)
    sess.relaying(1)
    sess.relayed(3, 2.0)
    assert sess.take_control() == []  # 1 still holds everything
    sess.relayed(1, 2.0)
    sess.relayed(1, 2.0)  # twice (or never relaying): nothing happens
    assert sess.take_control() == [Rx(3)]


def test_ping_timeout_closes_with_4001() -> None:
    sess = attached()
    sess.poll(20.0)
    sess.take_control()
    assert sess.next_deadline() == 30.0
    assert sess.poll(29.9) == []
    assert sess.poll(30.0) == [
        SessionAction("close", CloseCode.PING_TIMEOUT, "no heartbeat from client")
    ]


def test_any_frame_counts_as_a_sign_of_life() -> None:
    sess = attached()
    sess.receive(Event(1, "a"), 25.0)
    assert sess.poll(25.1) == [SessionAction("flush")]  # its rx, on its own
    assert sess.poll(30.0) == [SessionAction("ping")]  # ping was due at 20; alive
    assert sess.poll(54.9) == [SessionAction("ping")]  # next ping at 50; still alive
    assert sess.poll(55.0)[0].code == CloseCode.PING_TIMEOUT  # silent since 25


def test_long_poll_heartbeat_has_no_pings() -> None:
    sess = attached(heartbeat=POLL)
    assert sess.next_deadline() == 45.0
    assert sess.poll(44.0) == []
    sess.touch(44.0)  # a poll request arrived
    assert sess.next_deadline() == 89.0
    assert sess.poll(88.0) == []
    assert sess.take_control() == []
    assert sess.poll(89.0) == [
        SessionAction("close", CloseCode.POLL_TIMEOUT, "no poll from client")
    ]


def test_resume_window_expiry() -> None:
    sess = attached(resume_window=30.0)
    sess.detach(sess.connection, 10.0)
    assert sess.next_deadline() == 40.0
    assert sess.poll(39.9) == []
    assert sess.poll(40.0) == [SessionAction("expire")]


def test_resume_window_restarts_after_a_resume() -> None:
    sess = attached(resume_window=30.0)
    sess.detach(sess.connection, 10.0)
    conn = object()
    sess.attach(conn, 35.0, WS, 0)
    assert sess.poll(41.0) == []  # attached: no expiry
    sess.detach(conn, 50.0)
    assert sess.poll(79.0) == []
    assert sess.poll(80.0) == [SessionAction("expire")]


def test_never_attached_session_expires() -> None:
    sess = make(now=5.0, resume_window=30.0)
    assert sess.next_deadline() == 35.0
    assert sess.poll(34.0) == []
    assert sess.poll(35.0) == [SessionAction("expire")]


def test_auth_deadline_closes_with_4004() -> None:
    sess = ServerSession("sid", "u", "/", Settings(), 0.0, auth_deadline=12.0)
    sess.attach(object(), 0.0, WS, None)
    assert sess.next_deadline() == 12.0
    assert sess.poll(11.9) == []
    [action] = sess.poll(12.0)
    assert (action.kind, action.code) == ("close", CloseCode.TOKEN_EXPIRED)


def test_next_ack_id_is_fresh() -> None:
    sess = attached()
    assert [sess.next_ack_id() for _ in range(3)] == [1, 2, 3]


# -- stream positions: every offset of a stream at most once per session --------------------
R = "room:/:r"


def at(stream: str, epoch: str, offset: int) -> Outgoing:
    return Outgoing("event", {"e": "x", "d": offset}, (stream, epoch, offset))


def test_a_stream_offset_already_queued_is_not_queued_again() -> None:
    sess = attached()
    assert [sess.push(at(R, "ep", o)) for o in (1, 2, 2, 1, 3)] == [1, 2, 0, 0, 3]
    assert sess.stream_position(R) == ("ep", 3)
    assert sess.push(at("room:/:other", "ep", 1)) == 4  # streams are independent
    assert sess.push(out(9)) == 5  # frames without a position are never deduplicated


def test_another_epoch_is_taken_as_the_stream_starting_again() -> None:
    sess = attached()
    sess.push(at(R, "old", 50))
    assert sess.push(at(R, "new", 1)) == 2 and sess.stream_position(R) == ("new", 1)


def test_stream_dedupe_drops_exactly_the_offsets_at_or_below_in_the_same_epoch() -> None:
    # The rule against its statement, over epochs ordered either way and offsets below,
    # at and above the last one: a frame is dropped iff same epoch and offset <= last.
    for last_epoch, last_off in (("b", 5), ("a", 5), ("b", 0)):
        for epoch in ("a", "b", "c"):
            for offset in (0, 4, 5, 6, 100):
                sess = attached()
                sess.push(at(R, last_epoch, last_off))
                dropped = epoch == last_epoch and offset <= last_off
                assert (sess.push(at(R, epoch, offset)) == 0) == dropped, (epoch, offset)


def test_start_stream_keeps_a_later_position_in_the_same_epoch() -> None:
    sess = attached()
    assert sess.start_stream(R, "ep", 5) == ("ep", 5)
    assert sess.start_stream(R, "ep", 3) == ("ep", 5)  # a repeated, older catch-up
    assert sess.push(at(R, "ep", 5)) == 0 and sess.push(at(R, "ep", 6)) == 1
    assert sess.start_stream(R, "new", 0) == ("new", 0)  # the current epoch wins


def test_clip_lost_announces_only_what_the_session_does_not_have() -> None:
    sess = attached()
    sess.start_stream(R, "ep", 10)
    assert sess.clip_lost(Lost(R, "ep", 4, 8)) is None  # all at or below the position
    assert sess.clip_lost(Lost(R, "ep", 4, 12)) == Lost(R, "ep", 11, 12)
    assert sess.stream_position(R) == ("ep", 12)  # a bounded loss moves past it
    assert sess.clip_lost(Lost(R, "old", 3, None)) == Lost(R, "old", 3, None)


def test_an_open_ended_loss_is_announced_once() -> None:
    # The gap tracker (history restarted) and a rejoin's catch-up find the same loss.
    sess = attached()
    sess.start_stream(R, "ep", 10)
    assert sess.clip_lost(Lost(R, "ep", 11, None)) == Lost(R, "ep", 11, None)
    assert sess.clip_lost(Lost(R, "ep", 11, None)) is None
    assert sess.clip_lost(Lost(R, "ep", 7, None)) is None  # clipped to 11: told already
    assert sess.clip_lost(Lost(R, "ep", 15, None)) is None  # within what was told
    assert sess.clip_lost(Lost("other", "ep", 11, None)) is not None  # per stream


def test_an_open_ended_loss_is_news_after_events_came_or_in_another_epoch() -> None:
    sess = attached()
    sess.start_stream(R, "ep", 10)
    assert sess.clip_lost(Lost(R, "ep", 11, None)) is not None
    assert sess.push(at(R, "ep", 11)) == 1  # events of that epoch came after all
    assert sess.clip_lost(Lost(R, "ep", 12, None)) == Lost(R, "ep", 12, None)
    assert sess.clip_lost(Lost(R, "ep2", 0, None)) == Lost(R, "ep2", 0, None)
    assert sess.clip_lost(Lost(R, "ep2", 0, None)) is None  # told of already


def test_a_fresh_session_under_the_same_sid_is_told_again() -> None:
    told = attached()
    assert told.clip_lost(Lost(R, "ep", 1, None)) is not None
    assert attached().clip_lost(Lost(R, "ep", 1, None)) is not None


def test_held_stream_events_wait_for_release_and_keep_their_order() -> None:
    sess = attached()
    sess.hold(R)
    assert sess.push(at(R, "ep", 4)) == 0 and sess.push(at(R, "ep", 5)) == 0
    assert sess.push(at("user:/:u", "ep", 1)) == 1  # other streams flow
    sess.start_stream(R, "ep", 2)
    assert sess.push(at(R, "ep", 3)) == 0  # still held (a replay goes through push too)
    held = sess.release(R)
    assert [o.pos[2] for o in held if o.pos] == [4, 5, 3]


def test_a_replay_and_the_held_live_events_overlap_without_a_duplicate() -> None:
    sess = attached()
    sess.hold(R)
    for o in (5, 6):  # live, while history is read
        sess.push(at(R, "ep", o))
    held = sess.release(R)
    sess.start_stream(R, "ep", 2)
    queued = [sess.push(at(R, "ep", o)) for o in (3, 4, 5)]  # history up to its head
    queued += [sess.push(o) for o in held]
    assert queued == [1, 2, 3, 0, 4]  # 3, 4, 5 from history, 5 again dropped, 6 live
    assert [o.fields["d"] for _, o in sess.take_pending()] == [3, 4, 5, 6]


def test_nested_holds_release_with_the_last() -> None:
    sess = attached()
    sess.hold(R)
    sess.hold(R)
    sess.push(at(R, "ep", 1))
    assert sess.release(R) == []
    assert [o.pos for o in sess.release(R)] == [(R, "ep", 1)]
    assert sess.release(R) == []  # an unmatched release is harmless


def test_reported_positions_are_used_once() -> None:
    sess = make()
    sess.reported = {R: ("ep", 7)}
    assert sess.reported_position(R) == ("ep", 7)
    assert sess.reported_position(R) is None
