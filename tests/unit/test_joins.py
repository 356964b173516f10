"""The client's rooms and pending joins across lost sessions."""

from __future__ import annotations

from anywire.core.joins import JoinRegistry


def test_an_answer_makes_the_room_the_clients_whenever_it_comes() -> None:
    reg = JoinRegistry()
    reg.requested(1, "a", {"n": 1})
    assert reg.rooms == {}
    join = reg.answered(1, True)
    assert join is not None and join.room == "a" and reg.rooms == {"a": {"n": 1}}
    assert reg.answered(1, True) is None  # answered once


def test_a_refused_join_leaves_the_rooms_as_they_were() -> None:
    reg = JoinRegistry()
    reg.rooms["a"] = None
    reg.requested(2, "a", "new meta")
    reg.answered(2, False)
    assert reg.rooms == {"a": None}


def test_a_refused_rejoin_removes_the_room() -> None:
    reg = JoinRegistry()
    reg.rooms["a"] = None
    reg.requested(3, "a", None, rejoin=True)
    reg.answered(3, False)
    assert reg.rooms == {}


def test_leaving_cancels_pending_joins_of_the_room() -> None:
    reg = JoinRegistry()
    reg.requested(1, "a", None)
    reg.left("a")
    reg.answered(1, True)
    assert reg.rooms == {}


def test_a_fresh_session_rejoins_rooms_then_pending_joins_not_being_resent() -> None:
    reg = JoinRegistry()
    reg.rooms.update({"a": 1, "b": 2})
    reg.requested(7, "c", 3)  # confirmed by the old session, answer lost with it
    reg.requested(8, "d", 4)  # still among the resent frames
    reg.requested(9, "b", 22)  # a new meta for b, pending: b is sent once, with it
    reg.requested(10, "e", 5)
    reg.left("e")
    send, dropped = reg.fresh_session(resent={8})
    assert [(j.id, j.room, j.meta, j.rejoin) for j in send] == [
        (0, "a", 1, True),
        (7, "c", 3, False),
        (9, "b", 22, False),
    ]
    assert [j.id for j in dropped] == [10] and 10 not in reg.pending
