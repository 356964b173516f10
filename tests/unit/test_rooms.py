"""Rooms: membership in both directions, presence metadata, namespaces, no leaks."""

from __future__ import annotations

from anywire.core.rooms import Member, Rooms


def test_join_and_presence() -> None:
    rooms = Rooms()
    assert rooms.join("/", "lobby", Member("s1", "alice", {"nick": "A"}))
    assert rooms.join("/", "lobby", Member("s2", None))
    assert rooms.sids("/", "lobby") == ["s1", "s2"]
    assert [m.to_wire() for m in rooms.members("/", "lobby")] == [
        {"sid": "s1", "user": "alice", "meta": {"nick": "A"}},
        {"sid": "s2", "user": None, "meta": None},
    ]
    assert len(rooms) == 1


def test_joining_twice_updates_metadata_only() -> None:
    rooms = Rooms()
    assert rooms.join("/", "r", Member("s1", "u", 1))
    assert not rooms.join("/", "r", Member("s1", "u", 2))
    assert rooms.members("/", "r") == [Member("s1", "u", 2)]
    assert rooms.entry_count() == 2  # one membership + one reverse index entry


def test_namespaces_are_separate() -> None:
    rooms = Rooms()
    rooms.join("/", "r", Member("s1", "u"))
    rooms.join("/admin", "r", Member("s2", "u"))
    assert rooms.sids("/", "r") == ["s1"]
    assert rooms.sids("/admin", "r") == ["s2"]
    assert rooms.rooms_of("s1") == {("/", "r")}


def test_leave() -> None:
    rooms = Rooms()
    rooms.join("/", "r", Member("s1", "u", "m"))
    rooms.join("/", "r", Member("s2", "v"))
    assert rooms.leave("/", "r", "s1") == Member("s1", "u", "m")
    assert rooms.leave("/", "r", "s1") is None
    assert rooms.leave("/", "missing", "s1") is None
    assert rooms.sids("/", "r") == ["s2"]
    assert rooms.rooms_of("s1") == set()


def test_leave_all_cleans_up_everything() -> None:
    rooms = Rooms()
    for room in ("b", "a", "c"):
        rooms.join("/", room, Member("s1", "u"))
    rooms.join("/x", "a", Member("s1", "u"))
    rooms.join("/", "a", Member("s2", "v"))
    left = rooms.leave_all("s1")
    assert [(ns, room) for ns, room, _ in left] == [("/", "a"), ("/", "b"), ("/", "c"), ("/x", "a")]
    assert all(member.sid == "s1" for _, _, member in left)
    assert rooms.rooms_of("s1") == set()
    assert rooms.sids("/", "a") == ["s2"]
    assert len(rooms) == 1
    rooms.leave_all("s2")
    assert len(rooms) == 0 and rooms.entry_count() == 0
    assert rooms.leave_all("never-joined") == []


def test_returned_collections_are_copies() -> None:
    rooms = Rooms()
    rooms.join("/", "r", Member("s1", "u"))
    rooms.join("/", "r", Member("s2", "u"))
    for sid in rooms.sids("/", "r"):  # safe to change membership while iterating
        rooms.leave("/", "r", sid)
    assert rooms.sids("/", "r") == []
    rooms.join("/", "q", Member("s1", "u"))
    rooms.rooms_of("s1").clear()
    assert rooms.rooms_of("s1") == {("/", "q")}


def test_unknown_room_is_empty() -> None:
    rooms = Rooms()
    assert rooms.sids("/", "none") == []
    assert rooms.members("/", "none") == []
    assert len(rooms) == 0
