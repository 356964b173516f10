"""The invariant checker of a chaos run (pure: records in, verdict out).

The guarantee, per client and stream: the offsets it received are exactly the offsets
published to that stream, in order, each once, except ranges a ``$lost`` event announced
to that client. So for every client and every stream it should receive:

* **duplicate**: an offset received twice (or a stream going backwards) fails;
* **unexplained gap**: a published offset neither received nor inside an announced
  range fails;
* **phantom**: an event received that was never published there fails (a wrong
  stream, a wrong offset for its key);
* the client's own second-line dedupe counter must be 0 (the server never sent a
  duplicate it had to drop).

Every failure comes with its evidence: the client, the stream, the offsets, and the
client's timeline around them (connections, sessions, ``$lost``) beside the faults.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..core.frames import StreamPos

__all__ = ["ClientRecord", "Verdict", "Violation", "check"]


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What one client received: ``events`` as ``(stream, epoch, offset, key, at)`` in
    arrival order, ``lost`` as the data of each ``$lost`` with its time, the streams it
    must receive, its dedupe counter and its timeline."""

    name: str
    transport: str
    streams: frozenset[str]
    events: tuple[tuple[str, str, int, str, float], ...]
    lost: tuple[dict[str, object], ...] = ()
    duplicates_dropped: int = 0
    timeline: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant, with what shows it."""

    kind: str
    client: str
    stream: str
    detail: str
    evidence: str = ""


@dataclass
class Verdict:
    """The result: per transport counters and the violations (empty: the run held)."""

    violations: list[Violation] = field(default_factory=list)
    expected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    received: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    announced: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # offsets in $lost
    lost_events: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def ok(self) -> bool:
        return not self.violations

    def explain(self, limit: int = 20) -> str:
        """The violations, readable (at most ``limit``)."""
        lines = [f"{len(self.violations)} violation(s)"]
        for v in self.violations[:limit]:
            lines.append(f"- {v.kind}: {v.client} {v.stream}: {v.detail}")
            if v.evidence:
                lines += ["    " + line for line in v.evidence.splitlines()]
        return "\n".join(lines)


def check(
    published: Mapping[str, StreamPos],
    clients: Iterable[ClientRecord],
    faults: Iterable[tuple[float, str]] = (),
) -> Verdict:
    """Compare every client's record with ``published`` (key -> position)."""
    verdict = Verdict()
    by_stream: dict[str, dict[tuple[str, int], str]] = defaultdict(dict)
    for key, (stream, epoch, offset) in published.items():
        by_stream[stream][(epoch, offset)] = key
    fault_list = sorted(faults)
    for record in clients:
        t = record.transport
        if record.duplicates_dropped:
            verdict.violations.append(
                Violation("duplicate", record.name, "*",
                          f"the client dropped {record.duplicates_dropped} duplicate(s)")
            )  # fmt: skip
        lost_by_stream: dict[str, list[dict[str, object]]] = defaultdict(list)
        for lost in record.lost:
            lost_by_stream[str(lost.get("stream"))].append(lost)
            verdict.lost_events[t] += 1
        got_by_stream: dict[str, list[tuple[str, int, str, float]]] = defaultdict(list)
        for stream, epoch, offset, key, at in record.events:
            got_by_stream[stream].append((epoch, offset, key, at))
        for stream in record.streams | set(got_by_stream):
            _check_stream(
                verdict, record, stream, by_stream.get(stream, {}),
                got_by_stream.get(stream, []), lost_by_stream.get(stream, []), fault_list,
            )  # fmt: skip
    return verdict


def _check_stream(
    verdict: Verdict,
    record: ClientRecord,
    stream: str,
    published: dict[tuple[str, int], str],
    got: list[tuple[str, int, str, float]],
    lost: list[dict[str, object]],
    faults: list[tuple[float, str]],
) -> None:
    t = record.transport
    seen: set[tuple[str, int]] = set()
    last: dict[str, int] = {}
    for epoch, offset, key, at in got:
        if (epoch, offset) in seen or offset <= last.get(epoch, 0):
            kind = "duplicate" if (epoch, offset) in seen else "out of order"
            verdict.violations.append(
                Violation(kind, record.name, stream, f"offset {offset} (epoch {epoch}) after "
                          f"{last.get(epoch)}", _evidence(record, at, faults))
            )  # fmt: skip
        seen.add((epoch, offset))
        last[epoch] = max(last.get(epoch, 0), offset)
        expected_key = published.get((epoch, offset))
        if expected_key != key:
            verdict.violations.append(
                Violation("phantom", record.name, stream,
                          f"offset {offset} carried {key!r}, published {expected_key!r}",
                          _evidence(record, at, faults))
            )  # fmt: skip
    if stream not in record.streams:
        return
    verdict.received[t] += len(seen)
    for (epoch, offset), _ in sorted(published.items()):
        verdict.expected[t] += 1
        if (epoch, offset) in seen:
            continue
        if _announced(lost, epoch, offset):
            verdict.announced[t] += 1
            continue
        before = max((g for g in got if g[0] == epoch and g[1] < offset), default=None,
                     key=lambda g: g[1])  # fmt: skip
        at = before[3] if before else (got[0][3] if got else 0.0)
        verdict.violations.append(
            Violation("unexplained gap", record.name, stream,
                      f"offset {offset} (epoch {epoch}, key {published[(epoch, offset)]}) "
                      f"never arrived; last before it: {before[1] if before else None}",
                      _evidence(record, at, faults))
        )  # fmt: skip


def _announced(lost: list[dict[str, object]], epoch: str, offset: int) -> bool:
    for entry in lost:
        first, last = entry.get("from"), entry.get("to")
        if entry.get("epoch") != epoch or not isinstance(first, int):
            continue
        if offset >= first and (last is None or (isinstance(last, int) and offset <= last)):
            return True
    return False


def _evidence(record: ClientRecord, at: float, faults: list[tuple[float, str]]) -> str:
    """The client's timeline and the faults within 15 s of ``at``."""
    near = [(ts, f"client: {what}") for ts, what in record.timeline if abs(ts - at) < 15]
    near += [(ts, f"fault: {what}") for ts, what in faults if abs(ts - at) < 15]
    lines = [f"{ts - at:+8.3f} s  {what}" for ts, what in sorted(near)]
    return "\n".join(lines[:40])
