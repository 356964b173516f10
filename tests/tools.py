"""The programs outside Python that the test suite runs, and which tests need which.

``scripts/test`` installs them on Debian/Ubuntu (its table must name the same tools: a test
compares them); ``tests/conftest.py`` checks, before any test runs, that the ones the
collected tests need are there, and stops the run with one line naming every missing one.
Standard library only: the check must work before anything else is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable

__all__ = ["CHROMIUM", "NEEDS", "PACKAGES", "chromium_path", "missing", "missing_line"]

# The browser Playwright drives (no `playwright install`): Debian's package by default; on
# Ubuntu, where `chromium` is a snap, point ANYWIRE_CHROMIUM at /snap/bin/chromium.
CHROMIUM = "chromium"

# The JS client's tests run on `node --test` (Node 18+); an older node counts as missing.
NODE_MAJOR = 18

# tool -> the Debian/Ubuntu package that provides it.
PACKAGES = {
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "nginx": "nginx",
    "squid": "squid",
    CHROMIUM: "chromium",
    "node": "nodejs",
    # Deno and Bun for the runtime tests come from the npm registry (tests/js/runtimes.py);
    # NodeSource's nodejs ships npm, Debian's does not.
    "npm": "npm",
    "gcc": "gcc",
    # A throw-away CA and server certificate for the TLS (rediss://) test.
    "openssl": "openssl",
}

# Top-level directory under tests/ -> the tools its tests start.
NEEDS = {
    "scale": ("redis-server", "redis-cli", "nginx", "openssl"),
    "chaos": ("redis-server", "nginx"),
    "proxies": ("nginx", "squid", CHROMIUM),
    "browser": ("nginx", CHROMIUM),
    "js": ("node", "npm"),
    "doctor": ("nginx", CHROMIUM, "node"),
    "bench": ("gcc",),
}


def chromium_path() -> str:
    """The Chromium binary the browser tests launch (``ANYWIRE_CHROMIUM`` or Debian's)."""
    return os.environ.get("ANYWIRE_CHROMIUM") or "/usr/bin/chromium"


def _found(tool: str) -> bool:
    if tool == CHROMIUM:
        path = chromium_path()
        return os.path.isfile(path) and os.access(path, os.X_OK)
    if tool == "node":
        return _node_major() >= NODE_MAJOR
    # nginx and squid live in /usr/sbin, which is not on a normal user's PATH.
    return shutil.which(tool) is not None or os.access(f"/usr/sbin/{tool}", os.X_OK)


def _node_major() -> int:
    """The major version of ``node`` on the PATH (0: none, or it would not say)."""
    node = shutil.which("node")
    if node is None:
        return 0
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
        return int(out.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def missing(tools: Iterable[str] = PACKAGES) -> list[str]:
    """The tools among ``tools`` that are not installed, in table order."""
    wanted = set(tools)
    return [tool for tool in PACKAGES if tool in wanted and not _found(tool)]


def missing_line(tools: list[str]) -> str:
    """One line saying what to install (the words ``scripts/test --check`` prints)."""
    packages = " ".join(dict.fromkeys(PACKAGES[t] for t in tools))
    names = [f"node {NODE_MAJOR}+" if t == "node" else t for t in tools]
    line = (
        f"missing {', '.join(names)}: install the packages {packages} "
        f"(scripts/test does it on Debian/Ubuntu)"
    )
    if CHROMIUM in tools:
        line += f", or set ANYWIRE_CHROMIUM to a Chromium binary (not found: {chromium_path()})"
    return line
