"""Smoke test of the many-cores benches (bench/workers.py, bench/bus_receive.py,
bench/routing.py): tiny runs against their own redis-server and the real ``anywire
serve``, no timing assertions; the figures live in docs/scaling.md ("Many cores")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    return proc.stdout


def test_workers_bench_counts_every_worker(tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    table = run("workers.py", "--clients", "20", "--secs", "1", "--rounds", "1", "--json", str(out))
    one, two = json.loads(out.read_text())
    for r in (one, two):
        assert r["ready"] == 20 and r["errors"] == 0
        assert r["deliveries"] > 0 and r["server_cpu_s"] > 0
        assert r["per_cpu_s"] == round(r["deliveries"] / r["server_cpu_s"], 1)
    assert (one["workers"], two["workers"]) == (1, 2)
    # Two workers: the parent and both workers are counted, the clients are on the workers.
    assert len(two["cpu_by_pid"]) == 3
    assert sum(two["clients_by_pid"].values()) == 20
    assert "| 2 |" in table and "vs 1 worker" in table


def test_bus_receive_reports_its_costs() -> None:
    text = run("bus_receive.py", "--events", "2000", "--subscribers", "2")
    assert re.search(r"2000 events over 1 room\(s\), parser \w+: [\d.]+ us of CPU", text)
    assert "with 3 subscriber(s)" in text
    assert re.search(r"no local recipient: [\d.]+ us", text)


def test_routing_bench_reports_the_share_each_node_hosts() -> None:
    """bench/routing.py on 2 real nodes: every event a node received is of a room it
    hosts (share 1.00), where the single bus would have given it 0.75 on average."""
    text = run("routing.py", "--nodes", "2", "--rooms", "4", "--events", "200", "--idle", "0.2")
    row = next(line.split() for line in text.splitlines() if line.startswith("routing "))
    nodes, deliveries, received = int(row[1]), int(row[2]), float(row[5])
    share_min, share_avg, bus_share = float(row[6]), float(row[7]), float(row[8])
    assert (nodes, deliveries) == (2, 400)  # 200 events x 2 members, every one delivered
    assert received == 150  # rooms on one node or two: 300 receipts over 2 nodes
    assert share_min == share_avg == 1.0 and bus_share == 0.75
