"""The conformance kit proves itself: both shipped clients pass every implemented scenario
on every transport, and a deliberately broken driver fails the matching scenario with a
clear reason."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from anywire.conformance.scenarios import scenarios
from tests.e2e.conftest import ROOT, free_port

NODE = shutil.which("node")


def _kit(port: int, report: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "anywire.server.cli", "conformance", "--port", str(port),
           "--json", str(report), "--timeout", "60", *args]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def _wait_up(kit: subprocess.Popen[str]) -> None:
    """The kit's first stdout line says it is listening (EOF: it failed to start)."""
    assert kit.stdout is not None
    line = kit.stdout.readline()
    assert "serving on" in line, line + kit.stdout.read()


def _run(driver: list[str], tmp_path: Path, *kit_args: str) -> tuple[int, str, dict]:
    port, report = free_port(), tmp_path / "report.json"
    kit = _kit(port, report, *kit_args)
    try:
        _wait_up(kit)
        drv = subprocess.run([*driver, f"http://127.0.0.1:{port}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=70)  # fmt: skip
        out, _ = kit.communicate(timeout=70)
    finally:
        if kit.poll() is None:
            kit.kill()
            kit.wait()
    assert drv.returncode == 0, drv.stderr[-3000:]
    return kit.returncode, out, json.loads(report.read_text())


def _assert_all_pass(
    rc: int, out: str, report: dict, transports: tuple[str, ...] = ("websocket", "sse", "longpoll")
) -> None:
    names = {f"{s.name}[{t}]" for s in scenarios() for t in s.transports if t in transports}
    assert {r["scenario"] for r in report["scenarios"]} == names
    failed = [r for r in report["scenarios"] if r["status"] != "pass"]
    assert not failed, out
    assert rc == 0 and report["pass"] == report["total"] == len(names)


PY_DRIVER = [sys.executable, "-m", "tests.conformance.driver"]
JS_DRIVER = [str(NODE), "--no-warnings", "--experimental-websocket", "--experimental-eventsource",
             "tests/conformance/driver.mjs"]  # fmt: skip
# No EventSource: SSE runs over the client's streaming fetch (the React Native shape).
JS_FETCH_SSE = [str(NODE), "--no-warnings", "--experimental-websocket",
                "tests/conformance/driver.mjs"]  # fmt: skip


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[tuple[int, str, dict]]]:
    """Both shipped clients' full runs, each against its own kit, at the same time (the
    module's longest part: ~13 s each)."""
    assert NODE is not None, "node is required (CI installs it): the JS client runs on it"
    pool = ThreadPoolExecutor(3)
    runs = {
        name: pool.submit(_run, driver, tmp_path_factory.mktemp(name), *args)
        for name, driver, args in (
            ("python", PY_DRIVER, ()),
            ("js", JS_DRIVER, ()),
            ("js-fetch-sse", JS_FETCH_SSE, ("--transports", "sse")),
        )
    }
    pool.shutdown(wait=False)
    return runs


def test_python_client_passes(shipped: dict[str, Future[tuple[int, str, dict]]]) -> None:
    _assert_all_pass(*shipped["python"].result(timeout=150))


def test_js_client_passes(shipped: dict[str, Future[tuple[int, str, dict]]]) -> None:
    _assert_all_pass(*shipped["js"].result(timeout=150))


def test_js_client_passes_sse_over_fetch(shipped: dict[str, Future[tuple[int, str, dict]]]) -> None:
    rc, out, report = shipped["js-fetch-sse"].result(timeout=150)
    _assert_all_pass(rc, out, report, transports=("sse",))


def test_client_that_reconnects_after_a_terminal_close_fails(tmp_path: Path) -> None:
    driver = [sys.executable, "-m", "tests.conformance.driver", "--broken",
              "reconnect-after-terminal"]  # fmt: skip
    rc, out, report = _run(driver, tmp_path, "--only", "close_terminal_45xx")
    assert rc == 1 and report["fail"] == 3, out
    for r in report["scenarios"]:
        assert r["status"] == "fail"
        assert "reconnected after close code 4505" in r["reason"]
    assert re.search(
        r"FAIL +close_terminal_45xx\[websocket\] \([0-9.]+ s\): the client reconnected", out
    )


def test_unknown_scenario_is_a_clear_error() -> None:
    cmd = [sys.executable, "-m", "anywire.server.cli", "conformance", "--port", "1",
           "--only", "nope"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unknown scenario(s) ['nope']" in done.stderr


def test_client_that_does_not_refresh_its_token_fails(tmp_path: Path) -> None:
    driver = [sys.executable, "-m", "tests.conformance.driver", "--broken", "no-refresh"]
    rc, out, report = _run(driver, tmp_path, "--only", "token_refresh", "--transports", "sse")
    assert rc == 1 and report["fail"] == 1, out
    assert "did not refresh its 3 s credential in-band" in report["scenarios"][0]["reason"]
