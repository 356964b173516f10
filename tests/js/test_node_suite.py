"""Runs the browser client's unit tests (``node --test tests/js/``) under pytest, and
checks that the JS package's version is the Python package's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import anywire

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "anywire" / "clients" / "js"
NODE = shutil.which("node")


def test_node_suite_passes() -> None:
    assert NODE is not None, "node is required (CI installs it): the JS client's tests run on it"
    proc = subprocess.run(
        [NODE, "--test", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith(("# pass", "# fail"))]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert summary and summary[-1] == "# fail 0", summary
    passed = int(summary[0].split()[-1])
    assert passed >= 50, f"only {passed} JS tests ran"


def test_package_json_version_matches_python() -> None:
    package = json.loads((CLIENT / "package.json").read_text(encoding="utf-8"))
    assert package["version"] == anywire.__version__
    assert package["name"] == "anywire"
    assert package["type"] == "module"
    assert package["exports"]["."]["import"] == "./anywire.js"
    assert (CLIENT / package["types"]).is_file()


def test_entry_module_exports_the_same_version() -> None:
    text = (CLIENT / "anywire.js").read_text(encoding="utf-8")
    assert f'export const VERSION = "{anywire.__version__}";' in text


def test_every_import_is_relative_with_an_extension() -> None:
    """The client is served as plain files: no bare specifiers, no missing ``.js``."""
    import re

    pattern = re.compile(r"""^\s*(?:import|export)\b[^'"]*?from\s+["']([^"']+)["']""", re.M)
    for path in CLIENT.glob("*.js"):
        for spec in pattern.findall(path.read_text(encoding="utf-8")):
            assert spec.startswith("./") and spec.endswith(".js"), f"{path.name}: {spec}"
            assert (CLIENT / spec[2:]).is_file(), f"{path.name}: {spec} does not exist"
