"""ServerSession's memory bounds: the outbox in bytes as well as frames, and liveness
control frames that never pile up (issue #13, "memory bounded per connection in bytes").

No event loop: time is a float and frames are encoded with the real JSON codec.
"""

from __future__ import annotations

from typing import Any

from anywire.core.codec import JsonCodec, Outgoing
from anywire.core.frames import Event, Ping, Pong, Rx
from anywire.core.session import Heartbeat, ServerSession
from anywire.core.settings import Settings

WS = Heartbeat(ping_interval=20.0, dead_after=30.0)
JSON = JsonCodec()


def attached(**overrides: Any) -> ServerSession:
    sess = ServerSession("sid", "user", "/", Settings(**overrides), 0.0)
    sess.attach(object(), 0.0, WS, None)
    return sess


def sized(i: int, pad: int = 1000) -> Outgoing:
    """An encoded ack of about ``pad`` bytes (what the host pushes: encoded first)."""
    out = Outgoing("ack", {"id": i, "ok": True, "d": "x" * pad})
    encoded = out.body(JSON)
    assert out.size == len(encoded)
    return out


def test_a_frame_gets_its_size_at_its_first_encoding_and_keeps_it() -> None:
    out = Outgoing("event", {"e": "n", "d": "abc"})
    assert out.size == 0
    body = out.body(JSON)
    assert out.size == len(body)
    out.fields["d"] = "a much longer value now"  # (never done; the size is pinned anyway)
    out.body(JSON)
    assert out.size == len(body)


def test_the_outbox_is_bounded_in_bytes_and_drops_the_oldest() -> None:
    sess = attached(outbox_bytes=10_000)
    frames = [sized(i) for i in range(30)]
    for f in frames:
        sess.push(f)
    assert sess.outbox_bytes <= 10_000
    kept = [seq for seq, _ in sess.outbox]
    assert kept == list(range(31 - len(kept), 31)) and 8 <= len(kept) <= 9
    assert sess.floor == kept[0]
    assert sess.outbox_bytes == sum(o.size for _, o in sess.outbox)


def test_dropping_frames_never_given_to_the_connection_is_a_slow_consumer() -> None:
    sess = attached(outbox_bytes=10_000)
    for i in range(30):
        sess.push(sized(i))
    # The host checks exactly this after every push and closes with 4002.
    assert sess.written < sess.floor - 1
    assert not sess.can_resume(0)  # a resume needing them gets recovered: false
    assert sess.can_resume(sess.floor - 1)


def test_a_reader_that_keeps_up_only_loses_written_frames() -> None:
    sess = attached(outbox_bytes=10_000)
    for i in range(30):
        sess.push(sized(i))
        sess.take_pending()  # the writer drains
        assert sess.written >= sess.floor - 1


def test_acknowledging_gives_the_bytes_back() -> None:
    sess = attached(outbox_bytes=10_000)
    for i in range(5):
        sess.push(sized(i))
    sess.take_pending()
    sess.receive(Rx(3), 1.0)
    assert sess.outbox_bytes == sum(o.size for _, o in sess.outbox)
    sess.receive(Rx(5), 1.0)
    assert sess.outbox_bytes == 0


def test_the_newest_frame_stays_however_large() -> None:
    sess = attached(outbox_bytes=1000)
    sess.push(sized(1, pad=100))
    big = sized(2, pad=5000)
    sess.push(big)
    assert [o for _, o in sess.outbox] == [big]
    assert sess.outbox_bytes == big.size


def test_the_frame_count_bound_still_holds() -> None:
    sess = attached(outbox_size=3, outbox_bytes=10**9)
    for i in range(5):
        sess.push(sized(i, pad=1))
    assert [seq for seq, _ in sess.outbox] == [3, 4, 5]


def test_a_shared_broadcast_counts_its_size_in_every_session() -> None:
    a, b = attached(outbox_bytes=10_000), attached(outbox_bytes=10_000)
    out = sized(1, pad=3000)
    a.push(out)
    b.push(out)
    assert a.outbox_bytes == b.outbox_bytes == out.size


def test_an_unencoded_frame_counts_a_fixed_size_consistently() -> None:
    sess = attached()
    out = Outgoing("event", {"e": "n", "d": "y" * 5000})
    sess.push(out)
    counted = sess.outbox_bytes
    assert counted > 0
    out.body(JSON)  # encoded later by a writer: the count does not change under it
    sess.take_pending()
    sess.receive(Rx(1), 1.0)
    assert sess.outbox_bytes == 0


def test_a_closed_session_holds_no_bytes() -> None:
    sess = attached()
    sess.push(sized(1))
    sess.close()
    assert sess.outbox_bytes == 0 and not sess.outbox


# -- liveness control frames ----------------------------------------------------------------


def test_pings_from_a_client_that_does_not_read_queue_one_pong() -> None:
    sess = attached()
    for i in range(1000):
        sess.receive(Ping(), 1.0 + i / 1000)
    assert sess.control == [Pong()]
    assert sess.take_control() == [Pong()]
    sess.receive(Ping(), 3.0)
    assert sess.take_control() == [Pong()]


def test_server_pings_do_not_pile_up_when_nothing_is_written() -> None:
    sess = attached()
    for k in range(1, 10):
        sess.receive(Event(k, "e", None), k * 20.0)  # alive, but its writer is stuck
        sess.poll(k * 20.0 + 0.2)  # the owed rx
        sess.poll(k * 20.0 + 0.5)  # the ping
    assert sum(1 for f in sess.control if type(f) is Ping) == 1
    assert sum(1 for f in sess.control if type(f) is Rx) == 1
    assert [f for f in sess.control if type(f) is Rx] == [Rx(9)]  # the newest receipt


def test_one_take_is_bounded_in_bytes_but_always_takes_a_frame() -> None:
    sess = attached()
    for i in range(10):
        sess.push(sized(i, pad=1000))
    first = sess.take_pending(limit=100, max_bytes=3500)
    assert [seq for seq, _ in first] == [1, 2, 3]
    sess.push(sized(10, pad=9000))
    rest = sess.take_pending(limit=100, max_bytes=3500)
    assert [seq for seq, _ in rest] == [4, 5, 6]
    sess.take_pending(limit=100, max_bytes=3500)
    sess.take_pending(limit=100, max_bytes=3500)
    assert [seq for seq, _ in sess.take_pending(limit=100, max_bytes=3500)] == [11]
