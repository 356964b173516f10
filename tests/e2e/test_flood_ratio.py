"""The bystander ratio (issue #13, "one budget for everything a client can make the server
do"): while one client abuses the server by one means, another client's echo p99 should
stay within 2x its idle value.

A bystander on a WebSocket sends an echo request every 5 ms and measures each answer's
latency: 300 samples in a 1.5 s window (their p99 is the third highest). For each means
an abuser runs as its own process for a bounded time
(tests/e2e/abuser.py: frames, empty batches, WebSocket pings, long-polls, POSTs,
resuming at once after every 4008 close, a fresh session after every 4008 close, and
polls with a forged token), ignoring
Retry-After. This machine has 2 cores for the server, the bystander and the abuser,
where a real abuser has a machine of its own: the abuser runs at nice 19, so it yields
the CPU whenever the server or the bystander wants it (it still takes every idle
cycle). The control is the same process burning CPU without touching the server ("burn").

Several rounds, median per means: measuring on 2 shared cores is noisy. Each means is
compared with an idle window measured right before it (the same conditions, seconds
apart), and a pair of windows during which processes other than the server, the
bystander and the abuser took more than :data:`QUIET` of a core is measured again (at
most :data:`RETRIES` times): the ratio is the server's, not the machine's. The figures
are printed (``-s``); AW_RATIO_ROUNDS and AW_RATIO_SECONDS make longer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .conftest import ROOT, Server, make_token, start_server
from .raw import RawConn

# Run alone (scripts/test's second phase): it asserts the server's CPU share and a bystander's
# p99 ratio, which other modules' load on the same cores would move.
pytestmark = pytest.mark.alone

MODES = ("frames", "empty", "pings", "polls", "posts", "reconnect", "fresh", "strangers")
ROUNDS = int(os.environ.get("AW_RATIO_ROUNDS", "3"))
# 1.5 s windows, probed every 5 ms: the 300 samples per window (and so the p99's rank)
# that 3 s windows probed every 10 ms gave, in half the time. The p99 estimates the
# latency a request arriving at a random moment sees; the probe rate changes how many
# samples a spike of the server's lands on, not the share of them. The probes stay within
# the bystander's own flood budget: at most 200 a second, its refill rate (burst 1000).
SECONDS = float(os.environ.get("AW_RATIO_SECONDS", "1.5"))
INTERVAL = 0.005  # seconds between the bystander's echo requests
TARGET = 2.0  # the target for the p99 ratio
# The asserted bound is looser than the target, ON PURPOSE and only for noise: on the
# shared 2-core machine the idle p99 alone varied from 0.4 to 5 ms between rounds and a
# CPU-burning process that never touches the server raised it up to 10x, so a 2x bound
# failed at random while the server was not busy. The ratios measured (median under 2x
# in every means, docs/hardening/flood.md) are printed; the server's own cost of each abuse,
# which noise does not move, is asserted against CPU_BOUND.
BOUND = float(os.environ.get("AW_RATIO_BOUND", "3.0"))
CPU_BOUND = 0.15  # share of a core the server may spend on one abuser, above idle
# Other processes' CPU (share of a core) past which a pair of windows is measured again.
# Run alone, on CI's fresh machine nothing else runs; beside other work (another suite,
# a benchmark on the same 2 cores) the abuser's cost to the bystander grows with the
# CPU the server cannot get, and the ratio read 3.30x and 4.37x against 3.0 (two runs of
# the alone phase in six, docs/testing/suite-time-round4.md).
QUIET = 0.25
RETRIES = 2  # a pair measured again at most this many times (then kept, its noise shown)


PRODUCTION = {
    "AW_FLOOD_RATE": "200", "AW_FLOOD_BURST": "1000",
    "AW_NEGOTIATE_RATE": "20", "AW_NEGOTIATE_BURST": "100",
    "AW_MAX_SESSIONS": "10000", "AW_MAX_SESSIONS_PER_USER": "100",
    "AW_MAX_SESSIONS_PER_IP": "1000",
    "AW_PING_INTERVAL": "20", "AW_PING_TIMEOUT": "10",
}  # fmt: skip


@pytest.fixture(scope="module")
def defaults() -> Iterator[Server]:
    """The production flood budget (200/s, 1000), admission limits (20 negotiations a
    second per address, 100 at once; session caps) and heartbeats (the bystander is
    silent while an abuser process starts and ends)."""
    srv = start_server(PRODUCTION)
    yield srv
    srv.stop()


class Bystander:
    """A well-behaved client echoing every ``INTERVAL`` (5 ms: 200 requests a second)."""

    def __init__(self, conn: RawConn) -> None:
        self.conn = conn
        self.s = 0

    async def run(self, seconds: float) -> list[float]:
        """Echo latencies, in ms, over ``seconds``."""
        loop = asyncio.get_running_loop()
        samples: list[float] = []
        end = loop.time() + seconds
        next_at = loop.time()
        while loop.time() < end:
            self.s += 1
            start = time.perf_counter()
            await self.conn.send({"t": "event", "s": self.s, "id": self.s, "e": "echo", "d": 1})
            while True:
                frame = await self.conn.recv(timeout=10)
                if frame.get("t") == "ack" and frame.get("id") == self.s:
                    break
                assert frame.get("t") not in ("close", "_closed"), frame
            samples.append((time.perf_counter() - start) * 1000)
            next_at += INTERVAL
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        return samples


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Others:
    """CPU time used by every process on the machine except ``pids`` (and their threads),
    from /proc/stat's busy jiffies less theirs, over the span since :meth:`start`."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self._at = self._read()

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is in user already)
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    def _read(self) -> float:
        ours = 0.0
        for pid in self.pids:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                ours += cpu_seconds(pid)
        return self._busy() - ours

    def start(self) -> None:
        self._at = self._read()

    def share(self, seconds: float) -> float:
        """Share of a core the others used since :meth:`start`, over ``seconds``."""
        return max(0.0, self._read() - self._at) / seconds


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def idle(bystander: Bystander, server: Server, seconds: float) -> tuple[float, float, float]:
    """The bystander's p99 with nothing else sent to the server, the share of a core the
    server used meanwhile, and the share other processes used."""
    others = Others(server.proc.pid, os.getpid())
    cpu = cpu_seconds(server.proc.pid)
    samples = await bystander.run(seconds)
    share = (cpu_seconds(server.proc.pid) - cpu) / seconds
    return p99(samples), share, others.share(seconds)


async def abused(
    bystander: Bystander, server: Server, mode: str, seconds: float
) -> tuple[list[float], float, float]:
    """The bystander's latencies while an abuser process runs ``mode``, the share of a
    core the server used meanwhile, and the share other processes used."""
    token = make_token(f"abuser-{mode}-{time.monotonic_ns()}")
    proc = await asyncio.create_subprocess_exec(
        "nice", "-n", "19", sys.executable, "-m", "tests.e2e.abuser",
        mode, server.url, token, str(seconds + 1),
        cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            assert (await proc.stdout.readline()).strip() == b"ready"
        await asyncio.sleep(0.5)  # the abuse is under way (not a synchronisation)
        others = Others(server.proc.pid, os.getpid(), proc.pid)
        cpu = cpu_seconds(server.proc.pid)
        samples = await bystander.run(seconds)
        share = (cpu_seconds(server.proc.pid) - cpu) / seconds
        noise = others.share(seconds)
        # Measured: stop the abuse now rather than let it run out its slack (it prints
        # its counts on the way out).
        with contextlib.suppress(ProcessLookupError):  # it may have just ended by itself
            proc.terminate()
        async with asyncio.timeout(10):
            out, _ = await proc.communicate()
        print(f"  {mode:9s} p99 {p99(samples):6.2f} ms  server CPU {share:4.0%}  "
              f"others {noise:4.0%}  abuser {out.decode().strip()}")  # fmt: skip
        return samples, share, noise
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(60 + ROUNDS * (len(MODES) + 1) * (RETRIES + 1) * (2 * SECONDS + 5))
async def test_bystander_p99_ratio_under_each_abuse(defaults: Server) -> None:
    conn = RawConn(defaults.url, "websocket", make_token("bystander"))
    await conn.open()
    bystander = Bystander(conn)
    ratios: dict[str, list[float]] = {m: [] for m in ("burn", *MODES)}
    cpu: dict[str, list[float]] = {m: [] for m in ("idle", "burn", *MODES)}
    noisy: dict[str, list[float]] = {m: [] for m in ("burn", *MODES)}  # others' share
    try:
        await bystander.run(1.0)  # warm up
        for n in range(ROUNDS):
            print(f"\nround {n + 1}/{ROUNDS}")
            for mode in ("burn", *MODES):
                # Each means against an idle window measured just before it, and again
                # while other processes took the CPU in either window (bounded).
                for attempt in range(RETRIES + 1):
                    calm, calm_cpu, calm_noise = await idle(bystander, defaults, SECONDS)
                    print(f"  idle      p99 {calm:6.2f} ms  server CPU {calm_cpu:4.0%}  "
                          f"others {calm_noise:4.0%}")  # fmt: skip
                    samples, share, noise = await abused(bystander, defaults, mode, SECONDS)
                    if max(calm_noise, noise) <= QUIET or attempt == RETRIES:
                        break
                    print(f"  (others took {max(calm_noise, noise):.0%} of a core: again)")
                ratios[mode].append(p99(samples) / calm)
                cpu["idle"].append(calm_cpu)
                cpu[mode].append(share)
                noisy[mode].append(max(calm_noise, noise))
    finally:
        await conn.close()
    median = {m: statistics.median(r) for m, r in ratios.items()}
    share = {m: statistics.median(c) for m, c in cpu.items()}
    print(f"\nmedian over {ROUNDS} rounds of {SECONDS} s, p99 / idle p99: "
          + ", ".join(f"{m} {r:.2f}x" for m, r in median.items()))  # fmt: skip
    print("median server CPU (share of a core): "
          + ", ".join(f"{m} {c:.0%}" for m, c in share.items()))  # fmt: skip
    print(json.dumps({"ratio": median, "server_cpu": share, "rounds": ratios}))
    costly = max(MODES, key=lambda m: share[m])
    assert share[costly] - share["idle"] <= CPU_BOUND, (
        f"{costly}: one abuser cost the server {share[costly]:.0%} of a core"
    )
    worst = max(MODES, key=lambda m: median[m])
    assert median[worst] <= BOUND, (
        f"{worst}: the bystander's p99 rose {median[worst]:.2f}x over idle (target {TARGET}x, "
        f"asserted bound {BOUND}x; rounds {', '.join(f'{r:.2f}' for r in ratios[worst])}, "
        f"other processes took {', '.join(f'{o:.0%}' for o in noisy[worst])} of a core)"
    )
