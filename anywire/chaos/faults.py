"""The faults of a chaos run, on a schedule, each recorded on a timeline.

* ``kill``: SIGKILL a node, start it again after a pause (the rotation);
* ``rolling``: a graceful rolling restart: SIGTERM each node in turn (timed: it must end
  within the drain bound), start it again, wait until it is healthy;
* ``redis_pause``: SIGSTOP Redis for some seconds, then SIGCONT;
* ``node_pause``: SIGSTOP a node (a node starved of CPU) for longer than the ack
  timeout, then SIGCONT.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from .procs import NodeProc, RedisProc

__all__ = ["Fault", "FaultRunner", "ci_schedule", "soak_schedule"]


@dataclass(frozen=True, slots=True)
class Fault:
    """``kind`` at ``at`` seconds into the run, on ``node`` (an index), for ``seconds``."""

    at: float
    kind: str
    node: int = 0
    seconds: float = 0.0


def ci_schedule(ack_timeout: float) -> list[Fault]:
    """Every kind of fault once or twice, within about 70 s."""
    return [
        Fault(8, "kill", 0, 1.5),
        Fault(18, "kill", 1, 1.5),
        Fault(28, "redis_pause", seconds=5.0),
        Fault(38, "node_pause", 2, ack_timeout + 2.0),
        Fault(48, "rolling"),
    ]


def soak_schedule(duration: float, ack_timeout: float, nodes: int) -> list[Fault]:
    """A SIGKILL every 15 s (rotating over the nodes), one Redis pause, one node paused,
    one rolling restart, spread over ``duration``."""
    faults: list[Fault] = []
    specials = {
        round(duration * 0.3): Fault(duration * 0.3, "redis_pause", seconds=5.0),
        round(duration * 0.5): Fault(duration * 0.5, "node_pause", 1, ack_timeout + 2.0),
        round(duration * 0.7): Fault(duration * 0.7, "rolling"),
    }
    t, k = 10.0, 0
    while t < duration - 20:
        near = [s for at, s in specials.items() if abs(at - t) < 8]
        if not near:
            faults.append(Fault(t, "kill", k % nodes, 2.0))
            k += 1
        t += 15.0
    faults += specials.values()
    return sorted(faults, key=lambda f: f.at)


@dataclass
class FaultRunner:
    """Runs a schedule against the run's processes; records what happened and when."""

    redis: RedisProc
    nodes: list[NodeProc]
    timeline: list[tuple[float, str]] = field(default_factory=list)
    stop_seconds: list[float] = field(default_factory=list)  # graceful stops, timed
    errors: list[str] = field(default_factory=list)

    def _note(self, what: str) -> None:
        self.timeline.append((time.monotonic(), what))

    async def run(self, schedule: list[Fault], start: float) -> None:
        """Apply ``schedule``; ``start`` is the loop time that ``at`` counts from."""
        loop = asyncio.get_running_loop()
        for fault in schedule:
            await asyncio.sleep(max(0.0, start + fault.at - loop.time()))
            try:
                await self._apply(fault)
            except Exception as exc:
                self.errors.append(f"{fault}: {exc!r}")
                self._note(f"{fault.kind} failed: {exc!r}")

    async def _apply(self, fault: Fault) -> None:
        if fault.kind == "kill":
            node = self.nodes[fault.node]
            self._note(f"SIGKILL node {node.port}")
            node.kill()
            await asyncio.sleep(fault.seconds)
            await asyncio.to_thread(node.start)
            self._note(f"node {node.port} back")
        elif fault.kind == "redis_pause":
            self._note(f"SIGSTOP redis for {fault.seconds} s")
            self.redis.pause()
            try:
                await asyncio.sleep(fault.seconds)
            finally:
                self.redis.resume()
            self._note("SIGCONT redis")
        elif fault.kind == "node_pause":
            node = self.nodes[fault.node]
            self._note(f"SIGSTOP node {node.port} for {fault.seconds} s")
            node.pause()
            try:
                await asyncio.sleep(fault.seconds)
            finally:
                node.resume()
            self._note(f"SIGCONT node {node.port}")
        elif fault.kind == "rolling":
            for node in self.nodes:
                self._note(f"SIGTERM node {node.port}")
                took = await asyncio.to_thread(node.terminate)
                self.stop_seconds.append(took)
                self._note(f"node {node.port} stopped in {took:.2f} s")
                await asyncio.to_thread(node.start)
                self._note(f"node {node.port} back")
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")
