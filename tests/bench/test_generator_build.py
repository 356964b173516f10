"""The C load generator is compiled at first use into a per-user cache: processes that
build it at once on an empty cache (the suite's bench modules side by side on a fresh
machine, or two ``anywire bench`` runs) each get a whole binary they can run."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 6
# Builds, then executes the binary (it exits or waits for input: either shows it ran).
BUILD_AND_RUN = """
import subprocess
from anywire.bench.generator import build
binary = build()
try:
    subprocess.run([str(binary)], stdin=subprocess.DEVNULL, capture_output=True, timeout=3)
except subprocess.TimeoutExpired:
    pass
print("ran", binary.name)
"""


@pytest.mark.parametrize("attempt", [1, 2])
def test_builds_at_once_on_an_empty_cache_all_run(tmp_path: Path, attempt: int) -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "XDG_CACHE_HOME": str(tmp_path)}  # fmt: skip

    def one(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", BUILD_AND_RUN], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip

    with ThreadPoolExecutor(PROCESSES) as pool:
        runs = list(pool.map(one, range(PROCESSES)))
    failed = [r.stderr.strip().splitlines()[-1:] for r in runs if r.returncode != 0]
    assert not failed, failed
    assert len({r.stdout for r in runs}) == 1 and runs[0].stdout.startswith("ran gen-")
    assert [p.name for p in (tmp_path / "anywire-bench").iterdir()] == [runs[0].stdout.split()[1]]
