"""Room membership and per-connection presence for one node.

Rooms are keyed by (namespace, room name). Each member is a session id with the user id
and the metadata it joined with, which is what presence reports. Both directions are
indexed so leaving every room on disconnect costs O(rooms of that session).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Member", "Rooms"]

RoomKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Member:
    """One connection present in a room."""

    sid: str
    user: str | None
    meta: Any = None
    quiet: bool = False
    """Joined without telling the room (a broadcast-only room): leaves without telling it
    either. A ``$leave`` goes to every other member, so a room of 10,000 whose sessions
    expire together would cost 10,000^2 deliveries for events nobody asked for."""
    _wire: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_wire", {"sid": self.sid, "user": self.user, "meta": self.meta})

    def to_wire(self) -> dict[str, Any]:
        """The presence entry as sent to clients: one dict per member, shared by every
        join answer that lists it (read-only; copy it to change it). A client re-joining
        a busy room again and again then adds a list of references per answer, not a
        copy of every entry."""
        return self._wire


class Rooms:
    """Bidirectional index of room membership with presence metadata."""

    def __init__(self) -> None:
        self._members: dict[RoomKey, dict[str, Member]] = {}
        self._rooms_of: dict[str, set[RoomKey]] = {}

    def join(self, ns: str, room: str, member: Member) -> bool:
        """Add ``member``; returns False if it was already there (metadata is updated)."""
        key = (ns, room)
        members = self._members.setdefault(key, {})
        fresh = member.sid not in members
        members[member.sid] = member
        self._rooms_of.setdefault(member.sid, set()).add(key)
        return fresh

    def leave(self, ns: str, room: str, sid: str) -> Member | None:
        """Remove ``sid`` from the room; returns the member that left, or None."""
        key = (ns, room)
        members = self._members.get(key)
        if members is None or sid not in members:
            return None
        member = members.pop(sid)
        if not members:
            del self._members[key]
        rooms = self._rooms_of.get(sid)
        if rooms is not None:
            rooms.discard(key)
            if not rooms:
                del self._rooms_of[sid]
        return member

    def leave_all(self, sid: str) -> list[tuple[str, str, Member]]:
        """Remove ``sid`` from every room; returns (ns, room, member) for each."""
        left = []
        for ns, room in sorted(self._rooms_of.get(sid, ())):
            member = self.leave(ns, room, sid)
            if member is not None:
                left.append((ns, room, member))
        return left

    def sids(self, ns: str, room: str) -> list[str]:
        """Session ids in a room (a copy, safe to iterate while membership changes)."""
        return list(self._members.get((ns, room), ()))

    def members(self, ns: str, room: str) -> list[Member]:
        """Presence: every connection in the room with its user and metadata."""
        return list(self._members.get((ns, room), {}).values())

    def rooms_of(self, sid: str) -> set[tuple[str, str]]:
        """(namespace, room) pairs the session is in."""
        return set(self._rooms_of.get(sid, ()))

    def sizes(self) -> Iterator[tuple[str, str, int]]:
        """``(namespace, room, members)`` of every non-empty room (the admin view takes
        the largest few; do not change membership while iterating)."""
        for (ns, room), members in self._members.items():
            yield ns, room, len(members)

    def __len__(self) -> int:
        """Number of non-empty rooms."""
        return len(self._members)

    def entry_count(self) -> int:
        """Total memberships (for leak checks and metrics)."""
        return sum(len(m) for m in self._members.values()) + len(self._rooms_of)
