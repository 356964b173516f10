"""Smoke test of ``anywire bench``: a tiny run per transport, no timing assertions.

It checks that the tool runs end to end (server, compiled generator, measurement) and
prints valid JSON with deliveries; the figures themselves live in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
def test_fanout_runs_on_every_transport(transport: str) -> None:
    result = bench("--clients", "10", "--transports", transport, "--duration", "2")
    assert result["ready"] == 10
    assert result["errors"] == 0
    assert result["deliveries"] > 0
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["server_rss_end_kb"] > 0


def test_echo_counts_round_trips() -> None:
    result = bench("--clients", "5", "--workload", "echo", "--duration", "1")
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


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
def test_open_loop_delivers_the_offered_load(transport: str) -> None:
    # 20 events/s to 10 clients for 2 s: ~400 deliveries (the schedule, not the server,
    # sets the rate; a little slack for the edges of the measuring window).
    result = bench(
        "--clients", "10", "--transports", transport, "--workload", "open", "--rate", "20",
        "--duration", "2",
    )  # fmt: skip
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
