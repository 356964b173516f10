"""Gap detection for streams received from an at-most-once bus (sans-I/O).

A node receives every stream's publishes over Redis pub/sub, which silently drops messages
during reconnects. Each publish carries ``(epoch, offset)``; :class:`GapTracker` delivers
them in offset order exactly once, and when an offset is skipped it asks the caller to
fetch the missing range from history (:class:`Fill`) while it buffers later arrivals.
When history cannot supply the range (trimmed, or the epoch changed because Redis lost
its data) it says so (:class:`Lost`), so the caller can tell the affected clients instead
of shortchanging them silently.

The caller owns all I/O: it feeds :meth:`GapTracker.offer` with live items, runs each
returned :class:`Fill` against history and feeds the answer to :meth:`GapTracker.filled`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .streams import Lost

__all__ = ["Fill", "GapTracker", "Lost", "Step"]


@dataclass(frozen=True, slots=True)
class Fill:
    """Fetch offsets ``after + 1 .. upto`` of ``stream`` in ``epoch`` from history."""

    stream: str
    epoch: str
    after: int
    upto: int


@dataclass(slots=True)
class Step:
    """What to do now: deliver ``items`` in order, report ``lost``, run ``fill``."""

    items: list[Any] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    fill: Fill | None = None


@dataclass(slots=True)
class _State:
    epoch: str
    last: int
    filling: bool = False
    held: dict[int, Any] = field(default_factory=dict)  # offset -> item, while filling


class GapTracker:
    """Per stream, the last offset delivered locally; bounded to ``max_streams`` streams
    (least recently used forgotten first: a forgotten stream starts again from whatever
    arrives next, which costs nothing but a missed gap check)."""

    def __init__(self, max_streams: int = 100_000, max_held: int = 10_000) -> None:
        self._streams: OrderedDict[str, _State] = OrderedDict()
        self._max_streams = max_streams
        self._max_held = max_held

    def __len__(self) -> int:
        return len(self._streams)

    def streams(self) -> list[str]:
        """Every tracked stream (to check for missed publishes after a reconnect)."""
        return list(self._streams)

    def position(self, stream: str) -> tuple[str, int] | None:
        """``(epoch, offset)`` delivered locally so far, or None if not tracked."""
        state = self._streams.get(stream)
        return None if state is None else (state.epoch, state.last)

    def seed(self, stream: str, epoch: str, offset: int) -> None:
        """Start tracking ``stream`` at ``offset`` unless it is tracked already."""
        if stream not in self._streams:
            self._track(stream, _State(epoch, offset))

    def offer(self, stream: str, epoch: str, offset: int, item: Any = None) -> Step:
        """A live publish arrived (``item`` None: only a probe of the stream's head, e.g.
        read after a reconnect, which may reveal a gap but delivers nothing itself)."""
        step = Step()
        state = self._streams.get(stream)
        if state is None:
            if item is None:
                return step
            self._track(stream, _State(epoch, offset))
            step.items.append(item)
            return step
        self._streams.move_to_end(stream)
        if epoch != state.epoch and not state.epoch:
            state.epoch = epoch  # restarted (see restart()): the new epoch from its start
        elif epoch != state.epoch:
            # History restarted (Redis lost its data or the stream expired): whatever
            # the old epoch held after our position is gone.
            step.lost.append(Lost(stream, state.epoch, state.last + 1, None))
            state.epoch, state.last, state.filling = epoch, 0, False
            state.held.clear()
        if state.filling:
            if item is not None and offset > state.last and len(state.held) < self._max_held:
                state.held[offset] = item
            return step
        if offset <= state.last:
            return step  # duplicate (or a probe that shows nothing new)
        if item is not None and offset == state.last + 1 and not state.held:
            state.last = offset
            step.items.append(item)
            return step
        if item is not None:
            state.held[offset] = item
        upto = offset - 1 if item is not None else offset
        state.filling = True
        step.fill = Fill(stream, epoch, state.last, upto)
        return step

    def filled(self, fill: Fill, found: list[tuple[int, Any]] | None) -> Step:
        """The answer to ``fill``: the ``(offset, item)`` pairs history still had in that
        range, or None if the range (or the epoch) is gone."""
        step = Step()
        state = self._streams.get(fill.stream)
        if state is None or state.epoch != fill.epoch or not state.filling:
            return step  # superseded (epoch change or forgotten meanwhile)
        state.filling = False
        got = {off: it for off, it in found or () if state.last < off <= fill.upto}
        for off in range(state.last + 1, fill.upto + 1):
            state.last = off
            if off in got:
                step.items.append(got[off])
            elif step.lost and step.lost[-1].last == off - 1:
                # A hole history cannot fill: one report per run of missing offsets.
                step.lost[-1] = Lost(fill.stream, fill.epoch, step.lost[-1].first, off)
            else:
                step.lost.append(Lost(fill.stream, fill.epoch, off, off))
        # Live items held while filling: deliver the consecutive run; a new hole means
        # another fill.
        held = state.held
        state.held = {}
        for off in sorted(held):
            if off <= state.last:
                continue
            if off == state.last + 1 and not state.filling:
                state.last = off
                step.items.append(held[off])
            elif not state.filling:
                state.filling = True
                state.held[off] = held[off]
                step.fill = Fill(fill.stream, fill.epoch, state.last, off - 1)
            else:
                state.held[off] = held[off]
        return step

    def restart(self, stream: str) -> Lost | None:
        """The stream's history is gone (its epoch key vanished, e.g. Redis restarted
        empty): report what came after our position lost, and take whatever epoch shows up
        next from its first offset without reporting it again."""
        state = self._streams.get(stream)
        if state is None or not state.epoch:
            return None
        lost = Lost(stream, state.epoch, state.last + 1, None)
        state.epoch, state.last, state.filling = "", 0, False
        state.held.clear()
        return lost

    def forget(self, stream: str) -> None:
        """Stop tracking ``stream`` (this node no longer receives it): a later consumer
        starts it again from a fresh read of history."""
        self._streams.pop(stream, None)

    def failed(self, fill: Fill) -> None:
        """The fill could not run (history unreachable): forget it so that the next
        publish or probe asks again; held items stay held."""
        state = self._streams.get(fill.stream)
        if state is not None and state.epoch == fill.epoch:
            state.filling = False

    def _track(self, stream: str, state: _State) -> None:
        self._streams[stream] = state
        while len(self._streams) > self._max_streams:
            self._streams.popitem(last=False)
