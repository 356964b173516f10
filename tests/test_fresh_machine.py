"""A machine without the suite's tools: the run stops at once with one line naming them.

Both checks run for real with a stripped PATH (only bash and this Python on it) and
``ANYWIRE_CHROMIUM`` pointing nowhere: ``scripts/test --check`` and ``--setup`` (the
README's test command) and a plain ``python3 -m pytest`` (tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.tools import PACKAGES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test"
# Installed outside /usr/sbin on every machine we know: stripped from PATH, they are missing.
ABSENT = ("redis-server", "redis-cli", "chromium", "node 18+", "npm", "gcc", "openssl")


@pytest.fixture
def bare_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds bash and python3 only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
    (bin_dir / "python3").symlink_to(sys.executable)
    return {"PATH": str(bin_dir), "ANYWIRE_CHROMIUM": str(tmp_path / "no-chromium")}


def named_tools(line: str) -> list[str]:
    """The tools a "missing a, b, c: install ..." line names."""
    match = re.search(r"missing (.+?): install", line)
    assert match, line
    return match.group(1).split(", ")


def test_script_and_conftest_know_the_same_tools() -> None:
    table = re.search(r"^TOOLS=\(\n(.*?)\n\)", SCRIPT.read_text(), re.S | re.M)
    assert table
    pairs = dict(entry.strip().split(":") for entry in table.group(1).splitlines())
    assert pairs == PACKAGES


def test_script_check_names_every_missing_tool(bare_path: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--check"], env=bare_path, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert set(ABSENT) <= set(named_tools(lines[0]))
    assert "redis-tools" in lines[0] and "nodejs" in lines[0]
    assert "ANYWIRE_CHROMIUM" in lines[0]


def test_script_without_apt_get_stops_before_installing(bare_path: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=bare_path, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "no apt-get here" in proc.stderr
    assert set(ABSENT) <= set(named_tools(proc.stderr))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_script_without_root_or_sudo_stops() -> None:
    # Run as nobody from a world-readable copy; apt-get is on its PATH, sudo is not.
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        (base / "scripts").mkdir()
        (base / "bin").mkdir()
        shutil.copy(SCRIPT, base / "scripts" / "test")
        for tool in ("bash", "apt-get", "id"):
            (base / "bin" / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        proc = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "bash",
             str(base / "scripts" / "test")],
            env={"PATH": str(base / "bin"), "ANYWIRE_CHROMIUM": "/nonexistent"},
            capture_output=True, text=True, timeout=30, check=False, cwd=base,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "as root, or with sudo: neither is available here" in proc.stderr
    assert set(ABSENT) <= set(named_tools(proc.stderr))


def test_plain_pytest_stops_at_once_with_one_line(bare_path: dict[str, str]) -> None:
    env = {**bare_path, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/js", "tests/scale"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "missing " in line]
    assert len(lines) == 1, proc.stdout[-2000:]
    assert named_tools(lines[0]) == ["redis-server", "redis-cli", "node 18+", "npm", "openssl"]
    assert "passed" not in proc.stdout and "error" not in proc.stdout.lower()


def test_an_old_node_counts_as_missing(bare_path: dict[str, str]) -> None:
    # Ubuntu 22.04's nodejs is 12: `node --test` needs 18.
    fake = Path(bare_path["PATH"]) / "node"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo v12.22.9 && exit 0\nexit 1\n')
    fake.chmod(0o755)
    script = subprocess.run(
        ["bash", str(SCRIPT), "--check"], env=bare_path, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert "node 18+" in named_tools(script.stderr)
    env = {**bare_path, "PYTHONPATH": str(ROOT)}
    conftest = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/js"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "missing node 18+, npm: install the packages nodejs npm" in conftest.stdout


PHASES = ROOT / "scripts" / "phases"
# Stands in for the suite's Python: records each pytest command line, exits with the code
# FAKE_EXIT_SIDE (phase 1) or FAKE_EXIT_ALONE (phase 2) names.
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case "$*" in
  *"not alone"*) exit "$FAKE_EXIT_SIDE" ;;
  *) exit "$FAKE_EXIT_ALONE" ;;
esac
"""


@pytest.mark.parametrize(
    ("side", "alone", "code"), [(0, 0, 0), (1, 0, 1), (0, 1, 1), (0, 5, 1), (2, 1, 1)]
)
def test_the_whole_suite_runs_both_phases_and_fails_if_either_does(
    tmp_path: Path, side: int, alone: int, code: int
) -> None:
    """`scripts/test` with no arguments hands the suite to scripts/phases: side by side
    (`-m "not alone"`), then alone (`-m alone`), always both, failing loudly if either failed
    or collected nothing (pytest's 5)."""
    assert "exec scripts/phases" in SCRIPT.read_text()
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls"
    env = {"PATH": os.environ["PATH"], "FAKE_LOG": str(log), "FAKE_EXIT_SIDE": str(side),
           "FAKE_EXIT_ALONE": str(alone)}  # fmt: skip
    proc = subprocess.run(
        ["bash", str(PHASES), str(fake)], env=env, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert proc.returncode == code, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "-m pytest -q -n 3 --dist loadfile -m not alone",
        "-m pytest -q -m alone",
    ]
    if code:
        assert "scripts/test: FAILED" in proc.stderr
        assert ("phase 1" in proc.stderr) == (side != 0)
        assert ("phase 2" in proc.stderr) == (alone != 0)
    else:
        assert "both phases passed" in proc.stdout
