"""Deno and Bun for the JS client's runtime tests: found, or installed from the npm registry.

Neither has a Debian package, but both publish their binaries on npm (the `deno` and `bun`
packages pull a platform package holding the executable). So, in this order:
``ANYWIRE_DENO`` / ``ANYWIRE_BUN`` (a path), the tool on the PATH, then a pinned
``npm install --prefix`` into a cache directory outside the checkout
(``ANYWIRE_JS_RUNTIMES``, default ``~/.cache/anywire/js-runtimes``), bounded in time.
When none of that works the test fails with one line saying why: never a silent skip.

``python3 -m tests.js.runtimes`` does the install up front (``scripts/test --setup`` calls it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Pinned: the versions these tests were written against (npm package name -> version).
VERSIONS = {"deno": "2.9.6", "bun": "1.4.5"}
INSTALL_TIMEOUT = 300  # seconds: two ~50 MB downloads


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "anywire" / "js-runtimes"
    return Path(os.environ.get("ANYWIRE_JS_RUNTIMES") or default)


def _works(path: str) -> bool:
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _installed(name: str, prefix: Path) -> str | None:
    """The executable npm put under ``prefix``: Deno's native binary when present (its
    ``.bin/deno`` is a node wrapper that spawns it), else the package's ``.bin`` entry."""
    modules = prefix / "node_modules"
    candidates = sorted(modules.glob("@deno/*/deno")) if name == "deno" else []
    candidates.append(modules / ".bin" / name)
    for path in candidates:
        if path.is_file() and _works(str(path)):
            return str(path)
    return None


def install(prefix: Path | None = None) -> None:
    """``npm install`` the pinned Deno and Bun into ``prefix``; RuntimeError with npm's
    last lines when it fails."""
    prefix = prefix or cache_dir()
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found (it installs Deno and Bun; it comes with node)")
    prefix.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, version in VERSIONS.items()]
    try:
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), *specs],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"npm install {' '.join(specs)}: no answer in {INSTALL_TIMEOUT} s"
        ) from exc
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise RuntimeError(f"npm install {' '.join(specs)} failed: {tail}")


def runtime(name: str) -> str:
    """The path of ``deno`` or ``bun``, installing both into the cache when needed.
    Raises RuntimeError naming what failed and how to provide the tool instead."""
    override = os.environ.get(f"ANYWIRE_{name.upper()}")
    if override:
        if not _works(override):
            raise RuntimeError(f"ANYWIRE_{name.upper()}={override} does not run `--version`")
        return override
    on_path = shutil.which(name)
    if on_path and _works(on_path):
        return on_path
    found = _installed(name, cache_dir())
    if found is None:
        try:
            install()
        except RuntimeError as exc:
            raise RuntimeError(f"{name} is needed and could not be installed: {exc}") from exc
        found = _installed(name, cache_dir())
    if found is None:
        raise RuntimeError(
            f"{name} is needed: npm installed {name}@{VERSIONS[name]} under {cache_dir()} "
            f"but no working executable came with it; set ANYWIRE_{name.upper()} to one"
        )
    return found


if __name__ == "__main__":
    try:
        for tool in VERSIONS:
            print(f"{tool}: {runtime(tool)}")
    except RuntimeError as exc:
        sys.exit(f"tests/js/runtimes.py: {exc}")
