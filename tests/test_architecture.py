"""Layering rules, checked two independent ways: an AST walk of every module, and
import-linter with the contracts in pyproject.toml.

* ``anywire.core`` is sans-I/O: standard library only, and not even the parts of it that
  do I/O or read the clock (asyncio, socket, time, selectors, threading); never the
  server, the transports or the clients.
* ``anywire.transports`` never import the server or the clients.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "anywire"

CORE_FORBIDDEN = (
    "asyncio",
    "socket",
    "time",
    "selectors",
    "threading",
    "anywire.server",
    "anywire.transports",
    "anywire.clients",
)
TRANSPORTS_FORBIDDEN = ("anywire.server", "anywire.clients")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    """Every module ``source`` imports, absolute, anywhere in the file (functions and
    ``TYPE_CHECKING`` blocks included), plus literal ``importlib.import_module`` /
    ``__import__`` targets."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # ``from anywire import server`` imports the submodule anywire.server.
            for alias in node.names:
                yield f"{target}.{alias.name}"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Layering violations of one module of the anywire package."""
    found: list[str] = []
    in_core = _matches(module, "anywire.core")
    in_transports = _matches(module, "anywire.transports")
    for name in imported_modules(source, module, is_package):
        top = name.partition(".")[0]
        if in_core:
            if top == "anywire":
                if not _matches(name, "anywire.core") and name != "anywire":
                    found.append(f"{module} imports {name} (core imports only itself)")
                    continue
            elif top not in sys.stdlib_module_names:
                # from-imports also yield "<module>.<name>", which is never a module of a
                # third-party package once the module itself is standard library.
                found.append(f"{module} imports {name} (not standard library)")
                continue
            for banned in CORE_FORBIDDEN:
                if _matches(name, banned):
                    found.append(f"{module} imports {name} (forbidden in the sans-I/O core)")
        elif in_transports:
            for banned in TRANSPORTS_FORBIDDEN:
                if _matches(name, banned):
                    found.append(f"{module} imports {name} (transports depend on core only)")
    return found


def checked_files() -> list[Path]:
    files = sorted((PACKAGE / "core").rglob("*.py")) + sorted(
        (PACKAGE / "transports").rglob("*.py")
    )
    return files


def test_the_checker_sees_every_module() -> None:
    names = {module_name(p) for p in checked_files()}
    for expected in (
        "anywire.core",
        "anywire.core.session",
        "anywire.core.codec",
        "anywire.core.peer",
        "anywire.transports",
        "anywire.transports.websocket",
    ):
        assert expected in names


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: module_name(p))
def test_layering(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert violations(source, module_name(path), path.name == "__init__.py") == []


# -- the checker catches what it should (synthetic sources) ----------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("anywire.core.x", "import asyncio"),
        ("anywire.core.x", "import asyncio.events"),
        ("anywire.core.x", "from asyncio import sleep"),
        ("anywire.core.x", "import time"),
        ("anywire.core.x", "from time import monotonic"),
        ("anywire.core.x", "import socket"),
        ("anywire.core.x", "import selectors"),
        ("anywire.core.x", "import threading"),
        ("anywire.core.x", "import msgpack"),
        ("anywire.core.x", "from litestar import Litestar"),
        ("anywire.core.x", "from ..server import host"),
        ("anywire.core.x", "from ..transports.base import Link"),
        ("anywire.core.x", "from .. import clients"),
        ("anywire.core.x", "from anywire.server.host import SessionHost"),
        ("anywire.core.x", "import anywire.clients.python"),
        ("anywire.core.x", "def f():\n    import asyncio\n"),
        ("anywire.core.x", "if TYPE_CHECKING:\n    import msgpack\n"),
        ("anywire.core.x", "import importlib\nimportlib.import_module('asyncio')\n"),
        ("anywire.core.x", "__import__('time')"),
        ("anywire.core", "from ..server import host"),
        ("anywire.core.sub.y", "from ...server import app"),
        ("anywire.transports.x", "from ..server import host"),
        ("anywire.transports.x", "from ..clients.python import client"),
        ("anywire.transports.x", "from anywire import server"),
        ("anywire.transports.x", "import anywire.server.app"),
    ],
)
def test_checker_catches_violations(module: str, source: str) -> None:
    assert violations(source, module, is_package=module == "anywire.core") != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("anywire.core.x", "from __future__ import annotations\nimport json, struct, hmac"),
        ("anywire.core.x", "from collections import deque\nfrom typing import Any"),
        ("anywire.core.x", "from . import frames\nfrom .codec import Outgoing"),
        ("anywire.core.x", "from anywire.core.frames import Event"),
        ("anywire.core.x", "import datetime"),  # datetime is not time
        ("anywire.core", "from .session import ServerSession"),
        ("anywire.transports.x", "import asyncio\nfrom ..core.codec import Codec"),
        ("anywire.transports.x", "from .base import Host\nimport anyio"),
        ("anywire.server.x", "import asyncio\nfrom ..transports import base"),
    ],
)
def test_checker_accepts_allowed_imports(module: str, source: str) -> None:
    assert violations(source, module, is_package=module == "anywire.core") == []


def test_relative_imports_resolve_against_the_package() -> None:
    assert set(imported_modules("from ..server import host", "anywire.core.x")) == {
        "anywire.server",
        "anywire.server.host",
    }
    source = "from . import frames"
    assert "anywire.core.frames" in set(imported_modules(source, "anywire.core", True))
    assert "anywire.core.frames" in set(imported_modules(source, "anywire.core.x"))


# -- import-linter ----------------------------------------------------------------------------


def test_import_linter_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    assert Path(exe).exists(), "import-linter (a test dependency) is not installed"
    result = subprocess.run(
        [exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout
