"""Smoke test of ``anywire bench``: a tiny run per transport, no timing assertions.

It checks that the tool runs end to end (server, compiled generator, measurement) and
prints valid JSON with deliveries; the figures themselves live in docs/benchmarks.md.

Each run is a fixed window (``--duration``) plus a server start: the runs of one kind
start side by side (tests/bench/sidebyside.py) when the first of their tests comes up, and each
test asserts on its own run. The closed-loop runs (fanout, echo) and the open-loop runs
are two groups, one after the other: an open-loop run counts what its schedule delivered
within its window, which a fanout saturating the cores beside it could starve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .sidebyside import SideBySide

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "bench", "--json", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    return json.loads(proc.stdout)


TRANSPORTS = ("websocket", "sse", "longpoll")
ECHO = "echo"


@pytest.fixture(scope="module")
def closed_loop() -> Iterator[SideBySide[dict]]:
    runs = {t: ("--clients", "10", "--transports", t, "--duration", "2") for t in TRANSPORTS}
    runs[ECHO] = ("--clients", "5", "--workload", "echo", "--duration", "1")
    together = SideBySide(bench, runs)
    yield together
    together.close()


@pytest.fixture(scope="module")
def open_loop() -> Iterator[SideBySide[dict]]:
    # 20 events/s to 10 clients for 2 s: ~400 deliveries each.
    together = SideBySide(bench, {
        t: ("--clients", "10", "--transports", t, "--workload", "open", "--rate", "20",
            "--duration", "2")
        for t in TRANSPORTS
    })  # fmt: skip
    yield together
    together.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fanout_runs_on_every_transport(closed_loop: SideBySide[dict], transport: str) -> None:
    result = closed_loop.result(transport)
    assert result["ready"] == 10
    assert result["errors"] == 0
    assert result["deliveries"] > 0
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["server_rss_end_kb"] > 0


def test_echo_counts_round_trips(closed_loop: SideBySide[dict]) -> None:
    result = closed_loop.result(ECHO)
    assert result["workload"] == "echo"
    assert result["deliveries"] > 0 and result["errors"] == 0


def test_bad_arguments_are_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "bench", "--transports", "carrier-pigeon"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert "unknown transport" in proc.stderr


# Alone (scripts/test's second phase): deliveries counted in a 2 s window of a paced
# publisher; a server starved by other modules delivers its backlog inside the window
# (600 seen side by side at load ~10, longpoll).
@pytest.mark.alone
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_open_loop_delivers_the_offered_load(open_loop: SideBySide[dict], transport: str) -> None:
    # 20 events/s to 10 clients for 2 s: ~400 deliveries (the schedule, not the server,
    # sets the rate; a little slack for the edges of the measuring window).
    result = open_loop.result(transport)
    assert result["workload"] == "open" and result["offered"] == 20
    assert result["errors"] == 0
    assert 300 <= result["deliveries"] <= 500
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


@pytest.mark.parametrize("rate", ["0", "-5", "nan"])
def test_open_loop_refuses_a_rate_that_is_not_positive(rate: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "bench", "--workload", "open",
         "--rate", rate],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--rate must be positive" in proc.stderr
