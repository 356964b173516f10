"""Which other nodes are alive, judged from their heartbeat keys (no I/O, time passed in).

Every node sets ``alive:<node>`` each heartbeat with an expiry of three. A missing key is
only *suspicious*: Redis may have been paused (every key expires at once when it resumes,
before the nodes' next heartbeat), or this node's own view of Redis may be stale. So:

* a node is declared dead when its key was missing at two checks at least ``confirm``
  seconds apart, with no successful sight of it in between;
* a check that failed (Redis unreachable from here) clears every suspicion: nothing is
  judged across an outage of our own;
* a dead node seen alive again (it was stopped, not killed) is alive again.

Death is what lets a forwarded request stop waiting for its owner, and what lets the
cluster remove a node's presence; the bound is about ``3 + 2`` heartbeats.
"""

from __future__ import annotations

__all__ = ["Liveness"]


class Liveness:
    """Suspicions and verdicts about the other nodes."""

    def __init__(self, confirm: float) -> None:
        self.confirm = confirm
        self._suspects: dict[str, float] = {}  # node -> when its key was first missed
        self._dead: set[str] = set()

    def observe(self, now: float, seen: dict[str, bool]) -> list[str]:
        """A check at ``now`` saw each node's key present (True) or missing (False).
        Returns the nodes that are newly dead."""
        newly: list[str] = []
        for node, alive in seen.items():
            if alive:
                self._suspects.pop(node, None)
                self._dead.discard(node)
                continue
            if node in self._dead:
                continue
            since = self._suspects.setdefault(node, now)
            if now - since >= self.confirm:
                del self._suspects[node]
                self._dead.add(node)
                newly.append(node)
        return newly

    def unsure(self) -> None:
        """This node could not check (Redis unreachable): judge nothing across it."""
        self._suspects.clear()

    def gone(self, node: str) -> None:
        """``node`` said it is stopping: dead now (until seen beating again)."""
        self._suspects.pop(node, None)
        self._dead.add(node)

    def dead(self, node: str) -> bool:
        """Whether ``node`` has been declared dead (and not seen since)."""
        return node in self._dead

    def forget(self, node: str) -> None:
        """``node`` is gone for good (reaped): stop remembering it."""
        self._dead.discard(node)
        self._suspects.pop(node, None)
