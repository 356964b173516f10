"""The client's second line of dedupe across a restarted history (no I/O): what the SSE
client of tests/scale/test_sentinel_nodes.py was handed once (saved run, 1 in 7 before
the server fix, docs/reliability/sentinel-duplicates.md) reaches the application once."""

from __future__ import annotations

from typing import Any

from anywire.clients.python.continuity import Continuity
from anywire.core.frames import Event
from anywire.core.peer import ClientPeer

R = "room:/:fo-sse"


def _tick(epoch: str, offset: int, tick: int) -> Event:
    return Event(s=1, e="tick", d=tick, r="fo-sse", o=(R, epoch, offset))


def _lost() -> Event:
    d = {"stream": R, "epoch": "A", "from": 41, "to": None, "room": "fo-sse"}
    return Event(s=1, e="$lost", d=d, r="fo-sse")


def test_a_replayed_old_epoch_and_its_lost_are_dropped() -> None:
    c = Continuity(ClientPeer(), "/")
    first = [_tick("A", i + 1, i) for i in range(40)] + [_lost()]
    first += [_tick("B", i - 39, i) for i in range(40, 110)]
    # The replay: the whole outbox again (epoch A, the $lost, epoch B), then live events.
    again = first + [_tick("B", i - 39, i) for i in range(110, 120)]
    delivered: list[tuple[str, Any]] = [(e.e, e.d) for e in first + again if c.accept(e)]
    ticks = [d for e, d in delivered if e == "tick"]
    assert ticks == list(range(120))
    assert [e for e, _ in delivered].count("$lost") == 1
    assert c.positions.duplicates == len(first)
