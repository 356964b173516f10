"""The README's Python snippets, run as written: its Quickstart server (``chat.py``) under
``anywire serve`` and its client against it, on every transport."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .conftest import ROOT, Server, start_server

SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_the_two_quickstart_snippets() -> None:
    assert len(SNIPPETS) == 2
    assert "aw = Anywire(" in SNIPPETS[0]
    assert "def get_jwt()" in SNIPPETS[1] and 'Client("http://127.0.0.1:8000"' in SNIPPETS[1]


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    here = tmp_path_factory.mktemp("readme")
    (here / "chat.py").write_text(SNIPPETS[0])
    srv = start_server({"PYTHONPATH": str(here)}, app="chat:aw")
    yield srv
    srv.stop()


def test_quickstart_client_gets_its_ack(chat: Server, transport: str) -> None:
    code = SNIPPETS[1].replace("http://127.0.0.1:8000", chat.url)
    code = code.replace("token=get_jwt)", f"token=get_jwt, transports=({transport!r},))")
    assert f"transports=({transport!r},)" in code
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "delivered"
