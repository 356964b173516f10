"""Stream-level ordering: every room, user, session and namespace has its own offsets.

A stream id is ``"room:<ns>:<room>"``, ``"user:<ns>:<user>"``, ``"sess:<ns>:<sid>"`` (events
to one session and server calls) or ``"all:<ns>"`` (events to a whole namespace). Each
publish gets the next offset; the epoch is a random string chosen when the stream's history
was created, so a client holding an offset from a lost history (node restart, Redis flush)
can tell it apart. History is bounded.

Catching a session up on a stream is one pure step, :func:`plan_catch_up`: from the
position the client holds, what history still has and how far this node has delivered
the stream live, it decides which events to replay and which ranges to announce as lost.
Nothing is ever skipped without a :class:`Lost` naming it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CatchUp",
    "Lost",
    "StreamLog",
    "StreamRead",
    "all_stream",
    "own_streams",
    "plan_catch_up",
    "room_stream",
    "session_stream",
    "target_stream",
    "user_stream",
]


def room_stream(ns: str, room: str) -> str:
    """Stream id of a room."""
    return f"room:{ns}:{room}"


def user_stream(ns: str, user: str) -> str:
    """Stream id of a user's personal stream."""
    return f"user:{ns}:{user}"


def session_stream(ns: str, sid: str) -> str:
    """Stream id of one session (events sent to it alone, and server calls)."""
    return f"sess:{ns}:{sid}"


def all_stream(ns: str) -> str:
    """Stream id of a namespace (events sent to everyone in it)."""
    return f"all:{ns}"


def own_streams(ns: str, sid: str, user: str | None) -> list[str]:
    """The streams a session receives without joining, in the order its hello lists
    them: its user's (when it has one), its own, its namespace's."""
    mine = [session_stream(ns, sid), all_stream(ns)]
    return mine if user is None else [user_stream(ns, user), *mine]


def target_stream(kind: str, ns: str, target: str | None) -> str:
    """The stream a publish to ``kind`` (``room``, ``user``, ``session`` or ``all``) and
    ``target`` (room name, user id, session id; None for ``all``) goes on."""
    if kind == "room" and target is not None:
        return room_stream(ns, target)
    if kind == "user" and target is not None:
        return user_stream(ns, target)
    if kind == "session" and target is not None:
        return session_stream(ns, target)
    if kind == "all":
        return all_stream(ns)
    raise ValueError(f"no stream for a {kind!r} envelope with target {target!r}")


@dataclass(frozen=True, slots=True)
class Lost:
    """Offsets ``first .. last`` of ``stream`` (in ``epoch``) will never be delivered.

    ``last`` is None when the count is unknown (the epoch changed: everything after
    ``first - 1`` in the old epoch is gone)."""

    stream: str
    epoch: str
    first: int
    last: int | None


@dataclass(frozen=True, slots=True)
class StreamRead:
    """A read of one stream's history: its current ``epoch``, the ``head`` offset
    published last in it, and the ``(offset, item)`` entries it still holds after
    ``after``, in offset order (trimmed history simply starts later)."""

    epoch: str
    head: int
    after: int
    entries: Sequence[tuple[int, Any]] = ()


@dataclass(slots=True)
class CatchUp:
    """What to send a session that starts consuming a stream: it continues after
    ``start`` (``(epoch, offset)``), first the ``lost`` announcements, then ``items``
    in offset order; live events follow after ``position``."""

    start: tuple[str, int]
    position: tuple[str, int]
    lost: list[Lost] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


def plan_catch_up(
    stream: str, since: tuple[str, int] | None, read: StreamRead, upto: int
) -> CatchUp:
    """Plan the catch-up of a session on ``stream``.

    ``since`` is the ``(epoch, offset)`` the client holds (None: it holds nothing and
    starts with what is published from now on); ``read`` is the stream's history read
    after the offset to replay from; ``upto`` is how far this node has delivered the
    stream live (later offsets will reach the session live). An epoch of ``""`` means
    "before the stream existed": everything of the current epoch is replayed.
    """
    epoch = read.epoch
    if since is None:
        return CatchUp((epoch, upto), (epoch, upto))
    since_epoch, since_offset = since
    lost: list[Lost] = []
    if since_epoch == epoch:
        if since_offset >= upto:
            # The client is ahead of this node (another node delivered further): live
            # events up to its position are duplicates, the session's dedupe drops them.
            return CatchUp(since, since)
        after = since_offset
    else:
        if since_epoch:
            # History restarted (Redis lost its data, the stream expired): whatever the
            # old epoch held after the client's position is gone, count unknown.
            lost.append(Lost(stream, since_epoch, since_offset + 1, None))
        after = 0
    items: list[Any] = []
    expected = after + 1
    for offset, item in read.entries:
        if offset < expected or offset > upto:
            continue
        if offset > expected:  # trimmed or a hole: announce the run
            lost.append(Lost(stream, epoch, expected, offset - 1))
        items.append(item)
        expected = offset + 1
    if expected <= upto:
        lost.append(Lost(stream, epoch, expected, upto))
    return CatchUp((epoch, after), (epoch, upto), lost, items)


class StreamLog:
    """Bounded in-memory history of one stream. The epoch is supplied by the caller (the
    core has no randomness source of its own to keep tests deterministic). The history
    buffer is allocated at the first append: a stream that is only created (a session's
    own stream, say) costs no buffer."""

    __slots__ = ("_history", "_size", "epoch", "offset", "stream")

    def __init__(self, stream: str, epoch: str, size: int) -> None:
        self.stream = stream
        self.epoch = epoch
        self.offset = 0
        self._size = size
        self._history: deque[tuple[int, Any]] | None = None

    def append(self, item: Any) -> int:
        """Record ``item`` and return its offset."""
        self.offset += 1
        if self._history is None:
            self._history = deque(maxlen=self._size)
        self._history.append((self.offset, item))
        return self.offset

    def read(self, epoch: str, after: int) -> StreamRead:
        """The entries after ``after`` if ``epoch`` is this stream's, else from its
        start (the caller asked about another epoch)."""
        start = after if epoch == self.epoch else 0
        history = self._history or ()
        entries = [(off, item) for off, item in history if off > start]
        return StreamRead(self.epoch, self.offset, start, entries)

    def entry(self, offset: int) -> Any:
        """The item at ``offset``, or None if history no longer holds it."""
        for off, item in self._history or ():
            if off == offset:
                return item
        return None

    def since(self, epoch: str, offset: int) -> list[Any] | None:
        """Items after ``offset``, or None if that range is no longer (or never was) here."""
        if epoch != self.epoch or offset > self.offset:
            return None
        if offset == self.offset:
            return []
        history = self._history or deque()
        if not history or history[0][0] > offset + 1:
            return None
        return [item for off, item in history if off > offset]
