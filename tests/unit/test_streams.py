"""Stream logs: offsets, epochs and bounded history for stream-level recovery."""

from __future__ import annotations

from anywire.core.streams import StreamLog, room_stream, user_stream


def test_stream_ids() -> None:
    assert room_stream("/", "lobby") == "room:/:lobby"
    assert user_stream("/chat", "u1") == "user:/chat:u1"


def test_offsets_count_from_one() -> None:
    log = StreamLog("room:/:r", "ep", size=10)
    assert [log.append(x) for x in "abc"] == [1, 2, 3]
    assert log.offset == 3


def test_since_returns_what_came_after() -> None:
    log = StreamLog("room:/:r", "ep", size=10)
    for x in "abcde":
        log.append(x)
    assert log.since("ep", 0) == list("abcde")
    assert log.since("ep", 2) == list("cde")
    assert log.since("ep", 5) == []


def test_since_on_an_empty_stream() -> None:
    log = StreamLog("room:/:r", "ep", size=10)
    assert log.since("ep", 0) == []
    assert log.since("ep", 1) is None


def test_epoch_mismatch_is_not_recoverable() -> None:
    log = StreamLog("room:/:r", "ep2", size=10)
    log.append("a")
    assert log.since("ep1", 0) is None
    assert log.since("ep1", 1) is None


def test_offset_from_the_future_is_not_recoverable() -> None:
    log = StreamLog("room:/:r", "ep", size=10)
    log.append("a")
    assert log.since("ep", 2) is None


def test_truncated_history_is_not_recoverable() -> None:
    log = StreamLog("room:/:r", "ep", size=3)
    for i in range(1, 8):
        log.append(i)  # keeps offsets 5, 6, 7
    assert log.since("ep", 3) is None  # offset 4 is gone: no partial range
    assert log.since("ep", 0) is None
    assert log.since("ep", 4) == [5, 6, 7]
    assert log.since("ep", 6) == [7]
    assert log.since("ep", 7) == []


def test_zero_size_history() -> None:
    log = StreamLog("user:/:u", "ep", size=0)
    log.append("a")
    assert log.since("ep", 0) is None
    assert log.since("ep", 1) == []
