"""What ``anywire ... --help`` and ``--version`` print, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import anywire

ROOT = Path(__file__).resolve().parents[2]


def anywire_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def test_version() -> None:
    proc = anywire_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"anywire {anywire.__version__}\n"


@pytest.mark.parametrize(
    "command", [(), ("serve",), ("demo",), ("doctor",), ("bench",), ("chaos",)]
)
def test_help_is_plain_text(command: tuple[str, ...]) -> None:
    proc = anywire_cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("usage: anywire")
    # reST from the module docstrings must not leak into the terminal.
    for markup in ("``", ":func:", ":class:", ":mod:", "::\n"):
        assert markup not in text, f"{markup!r} in {' '.join(command)} --help"
    assert "Both run uvicorn" not in text


def test_top_level_help_lists_every_command() -> None:
    text = anywire_cli("--help").stdout
    for command in ("serve", "demo", "doctor", "bench", "chaos", "--version"):
        assert command in text


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        ("serve", ["--port PORT           port to listen on (default: 8000)",
                   "(default: 127.0.0.1)", "(default: info)", "(default: 1)",
                   "(default: 8192)", "(default: 32768)", "(default: 5.0)"]),
        ("demo", ["(default: 8000)", "(default: 127.0.0.1)", "(default: info)"]),
        ("bench", ["(default: 100)", "(default: websocket)", "(default: fanout)",
                   "(default: 10.0)"]),
        ("chaos", ["(default: 300)", "(default: soak)", "(default: websocket,sse,longpoll)"]),
    ],
)  # fmt: skip
def test_help_shows_defaults(command: str, defaults: list[str]) -> None:
    text = " ".join(anywire_cli(command, "--help").stdout.split())
    for default in defaults:
        assert " ".join(default.split()) in text, (command, default)
    assert "(default: None)" not in text and "(default: False)" not in text


def test_log_level_is_checked_and_case_insensitive() -> None:
    proc = anywire_cli("serve", "mod:app", "--log-level", "loud")
    assert proc.returncode == 2
    assert "invalid choice: 'loud'" in proc.stderr
    proc = anywire_cli("serve", "no_such_module_here:app", "--log-level", "WARNING")
    assert "invalid choice" not in proc.stderr
    assert "No module named 'no_such_module_here'" in proc.stderr
