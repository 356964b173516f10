"""Tenure: what survives a full garbage collection leaves the collector's sight.

A full (generation 2) collection scans every tracked object that is not frozen, and the
loop waits for it. At startup ``anywire serve`` freezes what exists then (modules,
settings: :func:`~anywire.server.cli.run`), but the connections come later: with 1,000
WebSocket clients a full collection scanned ~88,000 objects (~530,000 references, nearly
all of them the connections' own: protocols, tasks, sessions, writers) and took 55-70 ms
of CPU on the 2-core bench machine (loaded), and in the open loop at 50 events/s one came
every 5-11 s, inside a fan-out: one event's 1,000 deliveries and the few after it waited
for it (``bench/open_timeline.py``; docs/perf/latency-round2.md). Almost nothing was
garbage. With this class the later ones took 1-9 ms.

:class:`Tenure` freezes (:func:`gc.freeze`) whatever survived each full collection, so
the next one scans only what was created since: long-lived connections are scanned once,
not every time. Frozen objects are still freed by reference counting; only cyclic
garbage among them waits. So every ``refresh``-th full collection thaws them all
(:func:`gc.unfreeze`) instead of freezing, and the full collection after it scans
everything once and frees that garbage: cyclic garbage is held for at most ``refresh``
full collections. Those come with allocation (a reconnect storm's churn brings them
within seconds), not with wall time, so what is held scales with what a node does.
"""

from __future__ import annotations

import gc
from typing import Any

__all__ = ["REFRESH", "Tenure"]

REFRESH = 8
"""Full collections between thaws: one full scan of every object per ``REFRESH``
instead of one per full collection."""


class Tenure:
    """Freeze the survivors of each full collection; thaw every ``refresh``-th one."""

    __slots__ = ("fulls", "refresh", "thaws")

    def __init__(self, refresh: int = REFRESH) -> None:
        if refresh < 1:
            raise ValueError("refresh must be at least 1")
        self.refresh = refresh
        self.fulls = 0
        """Full collections seen since :meth:`install`."""
        self.thaws = 0
        """Times everything frozen was thawed (so the next full collection scans it)."""

    def install(self) -> None:
        """Start watching collections (idempotent)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def remove(self) -> None:
        """Stop watching; what is frozen stays frozen (the startup freeze's objects
        among it): :func:`gc.unfreeze` is the caller's choice."""
        while self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # After the collection: gen 2 now holds exactly its survivors (young garbage
        # has gone, the younger generations were merged in), so freezing takes them.
        if phase != "stop" or info.get("generation") != 2:
            return
        self.fulls += 1
        if self.fulls % self.refresh == 0:
            gc.unfreeze()  # the next full collection scans (and frees) everything once
            self.thaws += 1
        else:
            gc.freeze()
