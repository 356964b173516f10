"""Stream logs: offsets, epochs and bounded history for stream-level recovery."""

from __future__ import annotations

from anywire.core.streams import (
    Lost,
    StreamLog,
    StreamRead,
    all_stream,
    plan_catch_up,
    room_stream,
    session_stream,
    user_stream,
)


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


# -- catch-up planning ----------------------------------------------------------------------

S = "room:/:r"


def _read(epoch: str, head: int, after: int, offsets: list[int]) -> StreamRead:
    return StreamRead(epoch, head, after, [(o, f"e{o}") for o in offsets])


def test_every_stream_kind_has_an_id() -> None:
    assert session_stream("/", "abc") == "sess:/:abc"
    assert all_stream("/chat") == "all:/chat"


def test_no_position_starts_at_the_head_with_nothing_replayed() -> None:
    plan = plan_catch_up(S, None, _read("ep", 7, 0, [1, 2, 3, 4, 5, 6, 7]), 7)
    assert (plan.start, plan.position, plan.lost, plan.items) == (("ep", 7), ("ep", 7), [], [])


def test_a_position_in_the_epoch_replays_what_came_after_it() -> None:
    plan = plan_catch_up(S, ("ep", 3), _read("ep", 6, 3, [4, 5, 6]), 6)
    assert plan.start == ("ep", 3) and plan.position == ("ep", 6)
    assert plan.items == ["e4", "e5", "e6"] and plan.lost == []


def test_trimmed_history_is_announced_and_the_rest_replayed() -> None:
    plan = plan_catch_up(S, ("ep", 3), _read("ep", 9, 3, [7, 8, 9]), 9)
    assert plan.lost == [Lost(S, "ep", 4, 6)]
    assert plan.items == ["e7", "e8", "e9"]


def test_a_hole_in_history_is_announced_where_it_is() -> None:
    plan = plan_catch_up(S, ("ep", 0), _read("ep", 5, 0, [1, 2, 4, 5]), 5)
    assert plan.lost == [Lost(S, "ep", 3, 3)] and plan.items == ["e1", "e2", "e4", "e5"]


def test_offsets_beyond_the_node_position_are_left_to_live_delivery() -> None:
    plan = plan_catch_up(S, ("ep", 1), _read("ep", 5, 1, [2, 3, 4, 5]), 3)
    assert plan.items == ["e2", "e3"] and plan.position == ("ep", 3) and plan.lost == []


def test_nothing_read_up_to_the_node_position_is_lost_not_skipped() -> None:
    plan = plan_catch_up(S, ("ep", 1), _read("ep", 2, 1, [2]), 5)
    assert plan.items == ["e2"] and plan.lost == [Lost(S, "ep", 3, 5)]


def test_a_client_ahead_of_this_node_gets_nothing_and_keeps_its_position() -> None:
    plan = plan_catch_up(S, ("ep", 9), _read("ep", 9, 9, []), 6)
    assert plan.start == ("ep", 9) and plan.items == [] and plan.lost == []


def test_another_epoch_is_lost_whole_and_the_current_one_replayed_from_its_start() -> None:
    plan = plan_catch_up(S, ("old", 41), _read("new", 3, 0, [1, 2, 3]), 3)
    assert plan.lost == [Lost(S, "old", 42, None)]
    assert plan.start == ("new", 0) and plan.items == ["e1", "e2", "e3"]


def test_the_empty_epoch_means_before_the_stream_existed() -> None:
    plan = plan_catch_up(S, ("", 0), _read("ep", 2, 0, [1, 2]), 2)
    assert plan.lost == [] and plan.items == ["e1", "e2"]


def test_a_stream_log_reads_from_the_start_of_another_epoch() -> None:
    log = StreamLog(S, "ep", size=3)
    for x in "abcde":
        log.append(x)
    read = log.read("ep", 1)
    assert (read.epoch, read.head, read.after) == ("ep", 5, 1)
    assert read.entries == [(3, "c"), (4, "d"), (5, "e")]  # history holds 3 entries
    assert log.read("other", 4).after == 0
    assert log.entry(4) == "d" and log.entry(1) is None


def test_a_stream_log_allocates_no_history_until_its_first_event() -> None:
    log = StreamLog(S, "ep", size=1000)
    assert log.read("ep", 0) == StreamRead("ep", 0, 0, [])
    assert log._history is None
