"""Smoke test of the bandwidth benchmark (``python -m anywire.bench.bandwidth``): a tiny
run of the WebSocket JSON lines with deflate off and on; the figures themselves live in
docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_deflate_is_agreed_and_shrinks_the_chat_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "anywire.bench.bandwidth", "--json", "--clients", "3",
         "--events", "20", "--rate", "100", "--only", "chat websocket json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain, deflated = json.loads(proc.stdout)
    assert (plain["deflate"], deflated["deflate"]) == (False, True)
    assert (plain["deflated_conns"], deflated["deflated_conns"]) == (0, 3)
    assert plain["deliveries"] == deflated["deliveries"] == 60
    # A chat line is ~230 bytes of JSON: the envelope and framing come on top of it, and
    # deflate's running context takes it well below half.
    assert plain["down_bytes"] > 230
    assert deflated["down_bytes"] < plain["down_bytes"] / 2
    assert 0 < plain["p50_ms"] <= plain["p99_ms"]
