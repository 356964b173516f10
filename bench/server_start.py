"""What one ``anywire serve`` costs before it serves: the CLI's import, in instructions
(callgrind, repeatable within ~1% on a shared machine) and CPU seconds, and a real server's
start-to-ready wall time (spawn to the first 200 from /anywire/health). The suite starts
~200 servers, nodes and kits, so this is paid ~200 times per run.

    python3 bench/server_start.py                          # this checkout
    python3 bench/server_start.py --tree ../main --rounds 5   # A/B: this tree and another

With ``--tree`` the trees alternate round by round (A B A B), so a load change on a shared
machine hits both alike; the 1-minute load is printed before each round. Medians are shown.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPORT = "import anywire.server.cli"


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def import_cpu(tree: Path) -> float:
    """CPU seconds (user + sys) of a fresh interpreter importing the CLI."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", IMPORT], env=_env(tree), cwd=tree, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_instructions(tree: Path) -> int:
    """Instructions callgrind counts for the same interpreter run (start-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
             sys.executable, "-c", IMPORT],
            env=_env(tree), cwd=tree, capture_output=True, check=True,
        )  # fmt: skip
    found = re.search(rb"Collected : (\d+)", proc.stderr)
    if not found:
        raise SystemExit(f"callgrind printed no count: {proc.stderr.decode()[-800:]}")
    return int(found.group(1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_to_ready(tree: Path, app: str) -> float:
    """Seconds from spawning ``anywire serve app`` to its first healthy answer."""
    port = _free_port()
    cmd = [sys.executable, "-m", "anywire.server.cli", "serve", app, "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=_env(tree), cwd=tree, stdout=subprocess.DEVNULL)
    try:
        while time.monotonic() - began < 30:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/anywire/health", timeout=1):
                    return time.monotonic() - began
            except OSError:
                time.sleep(0.01)
        raise SystemExit(f"{tree}: no healthy answer in 30 s")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="another checkout to compare, alternated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--app", default="tests.e2e.testapp:app")
    args = parser.parse_args()
    trees = [REPO] + ([args.tree.resolve()] if args.tree else [])
    counted = shutil.which("valgrind") is not None
    results: dict[Path, dict[str, list[float]]] = {t: {"cpu": [], "ready": []} for t in trees}
    instructions: dict[Path, int] = {}
    for n in range(args.rounds):
        for tree in trees:
            print(f"round {n + 1} {tree}: load {os.getloadavg()[0]:.2f}", flush=True)
            results[tree]["cpu"].append(import_cpu(tree))
            results[tree]["ready"].append(start_to_ready(tree, args.app))
    if counted:
        for tree in trees:
            instructions[tree] = import_instructions(tree)
    for tree in trees:
        cpu, ready = results[tree]["cpu"], results[tree]["ready"]
        line = (f"{tree}: import CPU {statistics.median(cpu):.3f} s, start-to-ready "
                f"{statistics.median(ready):.3f} s (medians of {len(cpu)})")  # fmt: skip
        if tree in instructions:
            line += f", import {instructions[tree] / 1e6:.0f} M instructions"
        print(line)


if __name__ == "__main__":
    main()
