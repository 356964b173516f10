"""Regenerate the restrictive-network table in docs/browser.md (issue #16), in one command::

    python3 -m tests.proxies.matrix_table

Runs the matrix (tests/proxies/test_matrix.py) with ``ANYWIRE_MATRIX_RESULTS`` pointing at
a fresh file, then rewrites the section between ``<!-- matrix:start -->`` and
``<!-- matrix:end -->`` from the rows the tests wrote. The rows are written before each
test's assertions, so a failing cell still shows what it measured; the exit status is
pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "browser.md"
MODULES = ["tests/proxies/test_matrix.py"]
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


def run(results: Path) -> int:
    env = {**os.environ, "ANYWIRE_MATRIX_RESULTS": str(results)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODULES]
    return subprocess.run(cmd, cwd=ROOT, env=env, timeout=600).returncode


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| Cell | Condition | Client | Offered | Expected | Chosen | First message "
        "| Sent / recorded | Server events received | Duplicates | Reconnects | Idle cuts "
        "| Heartbeat |\n"
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        ok = "" if r["transport"] == r["expect"] else " ✗"
        lines.append(
            f"| {r['cell']} | {r['what']} | {r['client']} | {r['offered']} | {r['expect']} "
            f"| {r['transport']}{ok} | {r['first_message_ms']} ms "
            f"| {r['sent_delivered']} / {r['sent']} | {r['received']} / {r['burst']} "
            f"| {r['duplicates']} | {r['reconnects']} | {r['idle_cuts']} "
            f"| {r['ping_interval_ms'] / 1000:g} s |"
        )
    return head + "\n".join(lines) + "\n"


def rewrite(doc: Path, body: str) -> None:
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc}: markers {START} / {END} not found")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    doc.write_text(f"{before}{START}\n{body}{END}{after}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="anywire-matrix-") as tmp:
        results = Path(tmp) / "matrix.jsonl"
        code = run(results)
        lines = results.read_text().splitlines() if results.exists() else []
        rows = [json.loads(line) for line in lines]
    if not rows:
        print("no rows were written", file=sys.stderr)
        return code or 1
    rewrite(DOC, table(rows))
    print(f"{DOC.relative_to(ROOT)}: {len(rows)} rows (pytest exit {code})")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
