"""One chaos run, start to verdict: processes up, clients in, publish under faults, settle,
check, report, everything stopped (bounded at every step)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.streams import room_stream, session_stream, user_stream
from .checker import ClientRecord, Verdict, check
from .faults import Fault, FaultRunner, ci_schedule, soak_schedule
from .fleet import TRANSPORTS, Fleet, Member
from .procs import NginxProc, NodeProc, RedisProc
from .publisher import Publisher

__all__ = ["RunConfig", "RunResult", "run"]

APP = "anywire.chaos.app:aw"


@dataclass
class RunConfig:
    """What a run does. ``schedule``: ``ci`` (every fault within ~70 s), ``soak`` (a kill
    every 15 s for ``duration``) or ``none``."""

    clients: int = 90
    nodes: int = 3
    rooms: int = 10
    rooms_per_client: int = 2
    duration: float = 70.0  # seconds of publishing
    rate: float = 60.0  # events per second
    call_rate: float = 2.0
    schedule: str = "ci"
    settle: float = 40.0  # longest wait for every client to catch up afterwards
    transports: tuple[str, ...] = TRANSPORTS
    env: dict[str, str] = field(default_factory=dict)  # AW_CHAOS_* overrides
    log_dir: Path | None = None


@dataclass
class RunResult:
    """The verdict and everything measured."""

    verdict: Verdict
    published: int
    retried: Counter[str]
    uncertain: int
    calls: Counter[str]
    client_calls: Counter[str]  # how the clients' own calls ended
    publish_errors: list[tuple[str, int]]  # the commonest reasons publishes failed
    lost_kinds: Counter[str]  # $lost events by stream kind and whether bounded
    answered_twice: int
    reconnects: dict[str, list[tuple[float, float]]]  # transport -> (when, seconds)
    faults: list[tuple[float, str]]
    slowest: str  # the timeline of the slowest reconnect (evidence)
    stop_seconds: list[float]
    node_rss_kb: int
    redis_bytes: int
    tracebacks: list[str]
    protocol_errors: list[str]  # what clients logged as protocol errors (sequence gaps...)
    fault_errors: list[str]
    log_dir: Path
    seconds: float

    def _slowest(self) -> list[str]:
        """The slowest reconnect after each fault (which fault costs what)."""
        starts = [(at, what) for at, what in self.faults
                  if not what.startswith(("node ", "SIGCONT"))]  # fmt: skip
        worst: dict[str, float] = {}
        for drops in self.reconnects.values():
            for at, seconds in drops:
                cause = max((f for f in starts if f[0] <= at + 0.5), default=None)
                label = "before any fault" if cause is None else cause[1]
                worst[label] = max(worst.get(label, 0.0), seconds)
        return [f"  slowest reconnect after '{k}': {v:.2f} s" for k, v in worst.items()]

    @property
    def ok(self) -> bool:
        return (
            self.verdict.ok
            and not self.tracebacks
            and not self.protocol_errors
            and not self.fault_errors
            and self.answered_twice == 0
            and self.uncertain == 0
        )

    def report(self) -> str:
        """The per-transport table and the run's other figures."""
        v = self.verdict
        lines = [
            "transport   received/expected   unexplained  duplicates  $lost(events/offsets)"
            "  reconnect p50/p99 (s)",
        ]
        for t in TRANSPORTS:
            if not v.expected.get(t):
                continue
            gaps = sum(1 for x in v.violations if x.kind == "unexplained gap" and t in x.client)
            dups = sum(
                1 for x in v.violations
                if x.kind in ("duplicate", "out of order") and t in x.client
            )  # fmt: skip
            times = sorted(s for _, s in self.reconnects.get(t, []))
            p50 = statistics.median(times) if times else 0.0
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else 0.0
            lines.append(
                f"{t:<11} {v.received[t]:>8}/{v.expected[t]:<8}  {gaps:>11}  {dups:>10}"
                f"  {v.lost_events[t]:>6}/{v.announced[t]:<13}"
                f"  {p50:.2f} / {p99:.2f} ({len(times)})"
            )
        lines += [
            f"published {self.published} events (retried: {dict(self.retried) or 'none'}; "
            f"never confirmed: {self.uncertain})",
            *(f"  publish failed {n} times: {why}" for why, n in self.publish_errors[:3]),
            f"server calls: {dict(self.calls)}; answered twice by a client: {self.answered_twice}",
            f"client calls: {dict(self.client_calls)}",
            f"$lost events: {dict(self.lost_kinds) or 'none'}",
            f"graceful stops: {', '.join(f'{s:.2f}' for s in self.stop_seconds) or 'none'} s",
            *self._slowest(),
            "  timeline of the slowest one:",
            *("    " + line for line in self.slowest.splitlines()),
            f"node RSS max {self.node_rss_kb / 1024:.0f} MB; Redis used_memory "
            f"{self.redis_bytes / 1024 / 1024:.1f} MB",
            f"tracebacks in node logs: {len(self.tracebacks)}; protocol errors seen by "
            f"clients: {len(self.protocol_errors)}; fault errors: {self.fault_errors or 'none'}",
            *self.protocol_errors[:5],
            f"verdict: {'OK' if self.ok else 'FAILED'} ({self.seconds:.0f} s; logs in "
            f"{self.log_dir})",
        ]
        if not v.ok:
            lines.append(v.explain())
        for tb in self.tracebacks[:3]:
            lines.append("--- traceback in a node log ---\n" + tb)
        return "\n".join(lines)


def _records(members: list[Member], namespace: str = "/") -> list[ClientRecord]:
    out = []
    for m in members:
        streams = {room_stream(namespace, r) for r in m.rooms}
        streams.add(user_stream(namespace, m.user))
        if m.sid is not None:
            streams.add(session_stream(namespace, m.sid))
        out.append(
            ClientRecord(
                name=m.name,
                transport=m.transport,
                streams=frozenset(streams),
                events=tuple((g.stream, g.epoch, g.offset, g.key, g.at) for g in m.received),
                lost=tuple(m.lost),
                duplicates_dropped=m.client.stats["duplicates"],
                timeline=tuple(m.timeline),
            )
        )
    return out


def _tracebacks(text: str) -> list[str]:
    """Tracebacks and ERROR lines in a node log."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback") or line.startswith("ERROR"):
            found.append("\n".join(lines[i : i + 25]))
    return found


async def run(config: RunConfig) -> RunResult:
    """Do one run (see the package docstring)."""
    began = time.monotonic()
    log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="aw-chaos-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {"ANYWIRE_SECRET": "anywire-chaos-secret-0123456789abcdef", **config.env}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the in-process publisher reads the same settings
    redis = RedisProc()
    nodes = [NodeProc(APP, "", env, log_dir) for _ in range(config.nodes)]
    nginx: NginxProc | None = None
    fleet: Fleet | None = None
    publisher: Publisher | None = None
    rss_max = 0
    try:
        redis.start()
        for node in nodes:
            node.redis_url = redis.url
        await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
        nginx = NginxProc([n.port for n in nodes])
        nginx.start()
        tag = secrets.token_hex(3)
        rooms = [f"{tag}-room-{i}" for i in range(config.rooms)]
        fleet = Fleet(nginx.url, config.clients, rooms, config.rooms_per_client,
                      config.transports)  # fmt: skip
        await fleet.start()
        users = [m.user for m in fleet.members]
        sids = [m.sid for m in fleet.members if m.sid is not None]
        publisher = Publisher(redis.url, rooms, users, sids, config.rate, config.call_rate)
        await publisher.start()
        faults = FaultRunner(redis, nodes)
        ack_timeout = float(env.get("AW_CHAOS_ACK_TIMEOUT", 3.0))
        schedule: list[Fault] = []
        if config.schedule == "ci":
            schedule = ci_schedule(ack_timeout)
        elif config.schedule == "soak":
            schedule = soak_schedule(config.duration, ack_timeout, config.nodes)

        async def sample() -> None:
            nonlocal rss_max
            while True:
                rss_max = max([rss_max, *(n.rss_kb() for n in nodes)])
                await asyncio.sleep(1.0)

        sampler = asyncio.ensure_future(sample())
        start = asyncio.get_running_loop().time()
        try:
            await asyncio.gather(
                publisher.run(config.duration), faults.run(schedule, start)
            )
            verdict = await _settle(fleet, publisher, faults, config.settle)
        finally:
            sampler.cancel()
        redis_bytes = redis.used_memory()
        for m in fleet.members:
            await m.stop_chatter()
        answered: Counter[str] = Counter()
        client_calls: Counter[str] = Counter()
        lost_kinds: Counter[str] = Counter()
        for m in fleet.members:
            answered.update(m.answered)
            client_calls.update(m.calls)
            for lost in m.lost:
                kind = str(lost.get("stream", "?")).split(":", 1)[0]
                lost_kinds[f"{kind} {'bounded' if lost.get('to') is not None else 'to null'}"] += 1
        reconnects: dict[str, list[tuple[float, float]]] = {t: [] for t in TRANSPORTS}
        for m in fleet.members:
            reconnects[m.transport] += m.reconnects
        tracebacks: list[str] = []
        for node in nodes:
            tracebacks += _tracebacks(node.log_text())
        return RunResult(
            verdict=verdict,
            published=len(publisher.published),
            retried=publisher.retried,
            uncertain=len(publisher.uncertain),
            calls=Counter(publisher.calls.values()),
            client_calls=client_calls,
            publish_errors=publisher.errors.most_common(3),
            lost_kinds=lost_kinds,
            answered_twice=sum(1 for n in answered.values() if n > 1),
            reconnects=reconnects,
            stop_seconds=faults.stop_seconds,
            faults=list(faults.timeline),
            slowest=_slowest_timeline(fleet.members, faults.timeline),
            node_rss_kb=rss_max,
            redis_bytes=redis_bytes,
            tracebacks=tracebacks,
            protocol_errors=[
                f"{m.name}: {what}" for m in fleet.members for _, what in m.timeline
                if "protocol error" in what or "sequence gap" in what
            ],
            fault_errors=faults.errors,
            log_dir=log_dir,
            seconds=time.monotonic() - began,
        )
    finally:
        if fleet is not None:
            await fleet.close()
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.stop()
        if nginx is not None:
            nginx.stop()
        for node in nodes:
            with contextlib.suppress(Exception):
                node.resume()
                node.terminate(10)
        redis.resume()
        redis.kill()
        for k, value in saved.items():
            if value is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = value


def _slowest_timeline(members: list[Member], faults: list[tuple[float, str]]) -> str:
    """What the client whose reconnect took longest went through, beside the faults."""
    worst = max(
        ((seconds, at, m) for m in members for at, seconds in m.reconnects),
        default=None,
        key=lambda x: x[0],
    )
    if worst is None:
        return "(no reconnect)"
    seconds, at, member = worst
    end = at + seconds + 2
    near = [(t, f"{member.name}: {w}") for t, w in member.timeline if at - 10 < t < end]
    near += [(t, f"fault: {w}") for t, w in faults if at - 10 < t < end]
    return "\n".join(f"{t - at:+7.2f} s  {w}" for t, w in sorted(near))


async def _settle(
    fleet: Fleet, publisher: Publisher, faults: FaultRunner, bound: float
) -> Verdict:
    """Wait (at most ``bound`` s) until the check passes, then check once more."""
    deadline = time.monotonic() + bound
    while True:
        verdict = check(publisher.published, _records(fleet.members), faults.timeline)
        if verdict.ok or time.monotonic() > deadline:
            return verdict
        await asyncio.sleep(0.5)
