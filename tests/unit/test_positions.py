"""Client stream positions: catch-up points and the second line of dedupe."""

from __future__ import annotations

from anywire.core.positions import StreamPositions

R = "room:/:lobby"


def test_each_offset_is_accepted_once_and_duplicates_are_counted() -> None:
    pos = StreamPositions()
    assert [pos.accept((R, "ep", o)) for o in (1, 2, 2, 1, 5)] == [True, True, False, False, True]
    assert pos.duplicates == 2 and pos.get(R) == ("ep", 5)


def test_a_new_epoch_is_accepted_from_any_offset() -> None:
    pos = StreamPositions()
    pos.accept((R, "old", 90))
    assert pos.accept((R, "new", 1)) and pos.get(R) == ("new", 1) and pos.duplicates == 0


def test_a_start_position_makes_earlier_offsets_duplicates() -> None:
    pos = StreamPositions()
    pos.start(R, "ep", 7)
    assert not pos.accept((R, "ep", 7)) and pos.accept((R, "ep", 8))


def test_a_bounded_loss_moves_the_position_past_it() -> None:
    pos = StreamPositions()
    pos.start(R, "ep", 3)
    pos.lost(R, "ep", 9)
    assert pos.get(R) == ("ep", 9)
    pos.lost(R, "ep", 5)  # behind: no move
    pos.lost(R, "ep", None)  # count unknown: nothing to move to
    assert pos.get(R) == ("ep", 9)


def test_rooms_are_a_view_of_this_namespace_room_streams() -> None:
    pos = StreamPositions("/chat")
    pos.start("room:/chat:a", "ep", 1)
    pos.start("room:/other:b", "ep", 2)
    pos.start("user:/chat:u", "ep", 3)
    assert pos.rooms() == {"a": ("ep", 1)} and pos.room("a") == ("ep", 1)


def test_a_fresh_hello_sets_its_streams_and_forgets_the_old_session_stream() -> None:
    pos = StreamPositions()
    pos.fresh((("sess:/:old", "e1", 0), ("all:/", "e2", 4)))
    pos.accept(("sess:/:old", "e1", 2))
    pos.fresh((("sess:/:new", "e3", 0), ("all:/", "e2", 6)))
    assert pos.get("sess:/:old") is None
    assert sorted(map(tuple, pos.since())) == [("all:/", "e2", 6), ("sess:/:new", "e3", 0)]


def test_positions_are_bounded_least_recently_moved_first() -> None:
    pos = StreamPositions(limit=2)
    pos.start("a", "e", 1)
    pos.start("b", "e", 1)
    pos.accept(("a", "e", 2))
    pos.start("c", "e", 1)
    assert pos.get("b") is None and pos.get("a") == ("e", 2)


def test_an_epoch_moved_on_from_is_left_and_its_events_are_duplicates() -> None:
    # A Sentinel failover restarted history (epoch "old" -> "new"); a copy of the session
    # left on another node then replayed the old epoch's events (sent once already).
    pos = StreamPositions()
    assert all(pos.accept((R, "old", o)) for o in range(1, 41))
    assert not pos.left(R, "old")
    assert all(pos.accept((R, "new", o)) for o in range(1, 71))
    assert pos.left(R, "old") and not pos.left(R, "new")
    assert not any(pos.accept((R, "old", o)) for o in range(1, 41))
    assert pos.duplicates == 40 and pos.get(R) == ("new", 70)
    assert pos.accept((R, "new", 71))
    pos.forget(R)  # a room left and joined again starts over
    assert pos.accept((R, "old", 1))


def test_epochs_left_are_bounded_per_stream() -> None:
    pos = StreamPositions()
    for n in range(10):
        pos.accept((R, f"e{n}", 1))
    assert pos.left(R, "e8") and pos.left(R, "e5") and not pos.left(R, "e4")


def test_a_left_epoch_is_never_moved_back_to() -> None:
    # A node that has not seen the new epoch yet may still name the old one (a join
    # answer's position, a bounded $lost): the client stays where it is.
    pos = StreamPositions()
    pos.accept((R, "old", 40))
    pos.accept((R, "new", 3))
    pos.start(R, "old", 40)
    pos.lost(R, "old", 45)
    assert pos.get(R) == ("new", 3) and pos.accept((R, "new", 4))
