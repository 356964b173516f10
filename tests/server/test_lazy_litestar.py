"""``anywire.server`` imports Litestar only when ``AnywirePlugin`` is asked for: every
``anywire serve``, node and worker process would otherwise pay Litestar's import (~0.4-0.8 s
of CPU) at start, for a plugin only a Litestar app uses. Each check runs in a fresh
interpreter, so nothing imported by this test process counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return proc.stdout.strip()


LITESTAR_LOADED = "print(sorted(m for m in sys.modules if m.split('.')[0] == 'litestar')[:3])"


def test_the_cli_does_not_import_litestar() -> None:
    assert _run(f"import sys, anywire.server.cli; {LITESTAR_LOADED}") == "[]"


def test_the_plugin_is_still_importable_from_anywire_server() -> None:
    code = (
        "import sys, anywire.server as s; before = [m for m in sys.modules if m == 'litestar']; "
        "from anywire.server import AnywirePlugin; "
        "from litestar.plugins import InitPluginProtocol; "
        "print(before, AnywirePlugin.__module__, issubclass(AnywirePlugin, InitPluginProtocol), "
        "'AnywirePlugin' in s.__all__)"
    )
    assert _run(code) == "[] anywire.server.litestar True True"


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    code = (
        "import anywire.server as s\n"
        "try:\n    s.NoSuchThing\nexcept AttributeError as e:\n    print(e)"
    )
    assert _run(code) == "module 'anywire.server' has no attribute 'NoSuchThing'"
