"""GapTracker: in-order, exactly-once delivery over an at-most-once bus (no event loop)."""

from __future__ import annotations

from anywire.core.gaps import Fill, GapTracker, Lost


def test_consecutive_offsets_are_delivered_and_duplicates_dropped() -> None:
    t = GapTracker()
    assert t.offer("s", "e", 1, "a").items == ["a"]
    assert t.offer("s", "e", 2, "b").items == ["b"]
    assert t.offer("s", "e", 2, "b").items == []
    assert t.offer("s", "e", 1, "a").items == []
    assert t.position("s") == ("e", 2)


def test_first_item_of_an_unknown_stream_is_the_baseline() -> None:
    t = GapTracker()
    assert t.offer("s", "e", 7, "x").items == ["x"]
    assert t.position("s") == ("e", 7)


def test_gap_asks_for_a_fill_and_holds_later_items_until_it_is_filled() -> None:
    t = GapTracker()
    t.offer("s", "e", 1, 1)
    step = t.offer("s", "e", 4, 4)
    assert step.items == [] and step.fill == Fill("s", "e", 1, 3)
    assert t.offer("s", "e", 5, 5).items == []  # held while filling
    done = t.filled(step.fill, [(2, 2), (3, 3)])
    assert done.items == [2, 3, 4, 5] and done.lost == [] and done.fill is None
    assert t.position("s") == ("e", 5)


def test_a_trimmed_range_is_reported_lost_never_skipped_silently() -> None:
    t = GapTracker()
    t.offer("s", "e", 1, 1)
    step = t.offer("s", "e", 6, 6)
    assert step.fill is not None
    done = t.filled(step.fill, [(4, 4), (5, 5)])
    assert done.items == [4, 5, 6]
    assert done.lost == [Lost("s", "e", 2, 3)]
    gone = GapTracker()
    gone.offer("s", "e", 1, 1)
    step = gone.offer("s", "e", 3, 3)
    assert step.fill is not None
    done = gone.filled(step.fill, None)
    assert done.items == [3] and done.lost == [Lost("s", "e", 2, 2)]


def test_a_new_epoch_reports_the_old_one_lost_and_fills_from_the_start() -> None:
    t = GapTracker()
    t.offer("s", "old", 1, 1)
    step = t.offer("s", "new", 3, "n3")
    assert step.lost == [Lost("s", "old", 2, None)]
    assert step.fill == Fill("s", "new", 0, 2)
    done = t.filled(step.fill, [(1, "n1"), (2, "n2")])
    assert done.items == ["n1", "n2", "n3"]
    assert t.offer("s", "new2", 1, "m").items == ["m"]


def test_a_probe_after_reconnect_reveals_missed_publishes() -> None:
    t = GapTracker()
    t.offer("s", "e", 1, 1)
    assert t.offer("s", "e", 1).fill is None  # nothing missed
    step = t.offer("s", "e", 3)
    assert step.fill == Fill("s", "e", 1, 3)
    assert t.filled(step.fill, [(2, 2), (3, 3)]).items == [2, 3]


def test_a_hole_among_held_items_starts_another_fill() -> None:
    t = GapTracker()
    t.offer("s", "e", 1, 1)
    first = t.offer("s", "e", 3, 3)
    t.offer("s", "e", 6, 6)
    assert first.fill is not None
    done = t.filled(first.fill, [(2, 2)])
    assert done.items == [2, 3] and done.fill == Fill("s", "e", 3, 5)
    done = t.filled(done.fill, [(4, 4), (5, 5)])
    assert done.items == [4, 5, 6]


def test_a_failed_fill_is_asked_again_by_the_next_publish() -> None:
    t = GapTracker()
    t.offer("s", "e", 1, 1)
    step = t.offer("s", "e", 3, 3)
    assert step.fill is not None
    t.failed(step.fill)
    again = t.offer("s", "e", 4, 4)
    assert again.fill == Fill("s", "e", 1, 3)
    assert t.filled(again.fill, [(2, 2), (3, 3)]).items == [2, 3, 4]


def test_seed_and_bounded_stream_count() -> None:
    t = GapTracker(max_streams=2)
    t.seed("a", "e", 5)
    t.seed("a", "e", 1)  # already tracked: unchanged
    assert t.position("a") == ("e", 5)
    t.offer("b", "e", 1, 1)
    t.offer("c", "e", 1, 1)
    assert len(t) == 2 and t.position("a") is None
    assert sorted(t.streams()) == ["b", "c"]


def test_restart_reports_once_and_adopts_the_next_epoch_from_offset_one() -> None:
    t = GapTracker()
    t.offer("s", "old", 4, 4)
    assert t.restart("s") == Lost("s", "old", 5, None)
    assert t.restart("s") is None
    step = t.offer("s", "new", 2, "n2")
    assert step.lost == [] and step.fill == Fill("s", "new", 0, 1)
    assert t.filled(step.fill, [(1, "n1")]).items == ["n1", "n2"]
