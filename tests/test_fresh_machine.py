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
