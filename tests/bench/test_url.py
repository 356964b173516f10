"""``anywire bench --url``: the load generator against a server it did not start.

Two real servers on free ports: anywire's bench app (``python -m anywire.bench.app``, which
has the fan-out publisher and an echo handler) and the e2e test app (JWT auth), loaded
through the real CLI on every transport.

The runs against the JWT server (each its own clients and sessions, none reading the
server's counters) start side by side (tests/bench/sidebyside.py) when the first of
their tests comes up; each test asserts on its own run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import TRANSPORTS, Server, free_port, make_token, start_server

from .sidebyside import SideBySide

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "bench", "--quiet", "--no-pin", *args],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=ENV, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bench_app() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "anywire.bench.app", "--port", str(port)],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(url + "/ctl/stats", timeout=0.5).raise_for_status()
            break
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, "bench app did not start"
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def jwt_app() -> Iterator[Server]:
    srv = start_server({})
    yield srv
    srv.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fanout_against_a_running_bench_app(bench_app: str, transport: str) -> None:
    proc = bench("--url", bench_app, "--json", "--clients", "4", "--transports", transport,
                 "--duration", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    result = json.loads(proc.stdout)
    assert result["target"] == f"{bench_app} {transport}"
    assert result["ready"] == 4 and result["errors"] == 0
    assert result["deliveries"] > 0
    assert result["server_rss_base_kb"] is None  # not a process of ours: not measured
    assert result["server_stats"]["sessions"] >= 4


def test_echo_and_the_table_against_a_running_bench_app(bench_app: str) -> None:
    proc = bench("--url", bench_app, "--workload", "echo", "--clients", "3", "--duration", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "round trips/s" in proc.stdout
    assert "not measured (a server started elsewhere)" in proc.stdout


REFUSED = "refused"


@pytest.fixture(scope="module")
def against_jwt(jwt_app: Server) -> Iterator[SideBySide[subprocess.CompletedProcess[str]]]:
    """The idle runs of every transport (with a token) and the run without one."""
    token = make_token("bench")
    runs = {
        t: ("--url", jwt_app.url, "--token", token, "--json", "--workload", "idle",
            "--clients", "3", "--transports", t, "--duration", "1")
        for t in TRANSPORTS
    }  # fmt: skip
    runs[REFUSED] = ("--url", jwt_app.url, "--workload", "idle", "--clients", "2",
                     "--duration", "1")  # fmt: skip
    together = SideBySide(bench, runs)
    yield together
    together.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_idle_with_a_token_against_a_jwt_server(
    against_jwt: SideBySide[subprocess.CompletedProcess[str]], transport: str
) -> None:
    proc = against_jwt.result(transport)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    result = json.loads(proc.stdout)
    assert result["ready"] == 3 and result["errors"] == 0


def test_a_refused_token_is_reported(
    against_jwt: SideBySide[subprocess.CompletedProcess[str]],
) -> None:
    proc = against_jwt.result(REFUSED)
    assert proc.returncode == 1
    assert "negotiate 401" in proc.stdout


def test_fanout_needs_the_bench_app(jwt_app: Server) -> None:
    proc = bench("--url", jwt_app.url, "--token", make_token("bench"), "--clients", "2")
    assert proc.returncode == 1
    assert "fanout needs anywire's bench app" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--url", "https://example.com"), "plain HTTP"),
        (("--url", "http://127.0.0.1:1/prefix"), "server's root"),
        (("--url", "http://127.0.0.1:1", "--clients", "10001"), "at most 10000 clients"),
        (("--url", "http://127.0.0.1:1", "--duration", "601"), "at most 10000 clients and 600 s"),
        (("--url", "http://127.0.0.1:1", "--redis", "redis://x"), "already running"),
        (("--token", "t"), "--token goes with --url"),
    ],
)
def test_bad_url_arguments_are_refused(args: tuple[str, ...], message: str) -> None:
    proc = bench(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_a_server_that_is_not_there_is_one_clear_line() -> None:
    proc = bench("--url", f"http://127.0.0.1:{free_port()}", "--workload", "idle")
    assert proc.returncode == 1
    assert (
        proc.stderr.startswith("anywire bench: ")
        and "does not answer /anywire/health" in proc.stderr
    )
