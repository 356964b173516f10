"""The real JS client in Node against a real server, on every transport: as Node has it,
and in the React Native profile (no EventSource, window, document or sessionStorage; SSE
over a streaming fetch, or skipped when fetch cannot stream)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import anywire
from tests.e2e.conftest import (
    ROOT,
    TRANSPORTS,
    Server,
    make_token,
    spawn_server,
    start_server,
    start_servers,
)

NODE = shutil.which("node")
# Node 20 has WebSocket and EventSource only behind these flags (22 has WebSocket, and
# ignores flags it no longer needs); without them the client skips those transports.
FLAGS = ("--experimental-websocket", "--experimental-eventsource")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({})
    try:
        yield srv
    finally:
        srv.stop()


def run(
    server: Server, transports: str, profile: str, flags: tuple[str, ...] = FLAGS
) -> dict[str, object]:
    assert NODE is not None, "node is required (CI installs it)"
    proc = subprocess.run(
        [
            NODE,
            *flags,
            "tests/js/anywhere_client.mjs",
            server.url,
            transports,
            profile,
            make_token("js"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def check(result: dict[str, object], transport: str) -> None:
    assert result["transport"] == transport
    assert result["echo"] == {"hello": result["profile"]}
    assert result["asked"] == {"reply": 42}  # the server's call, acked by the client
    assert result["news"] == {"n": 1}
    assert result["recovered"] is True
    assert result["resumedOn"] == transport
    assert result["news2"] == {"n": 2}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_node(server: Server, transport: str) -> None:
    check(run(server, transport, "node"), transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_react_native_profile(server: Server, transport: str) -> None:
    """SSE runs over the streaming fetch here (EventSource is gone)."""
    result = run(server, transport, "rn")
    check(result, transport)
    assert result["storage"] == [transport]  # remembered in the async store
    assert result["again"] == transport  # and read back by the next socket


@pytest.mark.parametrize("transport", ("websocket", "longpoll"))
def test_react_native_without_streaming_fetch(server: Server, transport: str) -> None:
    """SSE is not offered at all: the socket goes straight to the next transport."""
    check(run(server, f"sse,{transport}", "rn-nostream"), transport)


def test_plain_node_skips_what_it_lacks(server: Server) -> None:
    """Node 20 without flags has no WebSocket or EventSource: SSE over fetch is used."""
    result = run(server, "websocket,sse,longpoll", "node", flags=())
    assert result["transport"] in ("sse", "websocket")  # websocket where node has it (22+)


class Foreground:
    """The foreground checks of every transport, side by side: each freezes a server of
    its own (SIGSTOP), so they cannot disturb one another; started when the first of
    their tests comes up, each test asserting on its own run."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(len(TRANSPORTS))
        self.runs: dict[str, Future[dict[str, Any]]] = {}
        self.servers: list[Server] = []
        self.procs: list[subprocess.Popen[str]] = []

    def result(self, transport: str) -> dict[str, Any]:
        if not self.runs:
            self.servers = start_servers([spawn_server({}) for _ in TRANSPORTS])
            self.runs = {
                t: self.pool.submit(self._check, srv, t)
                for t, srv in zip(TRANSPORTS, self.servers, strict=True)
            }
        return self.runs[transport].result(timeout=60)

    def _check(self, srv: Server, transport: str) -> dict[str, Any]:
        proc = subprocess.Popen(
            [str(NODE), *FLAGS, "tests/js/lifecycle_client.mjs", srv.url, transport,
             make_token("m")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.procs.append(proc)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "frozen?"
            os.kill(srv.proc.pid, signal.SIGSTOP)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "dead"
            os.kill(srv.proc.pid, signal.SIGCONT)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            return result
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        # A node process that hangs is killed, which ends its thread's readline.
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        self.pool.shutdown(wait=True)
        for srv in self.servers:
            os.kill(srv.proc.pid, signal.SIGCONT)
            srv.stop()


@pytest.fixture(scope="module")
def foreground() -> Iterator[Foreground]:
    assert NODE is not None, "node is required (CI installs it)"
    runs = Foreground()
    yield runs
    runs.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_foreground_check_resumes_at_once(foreground: Foreground, transport: str) -> None:
    """React Native profile: the app comes back to the foreground (AppState "active",
    simulated) over a connection that died silently (the server frozen with SIGSTOP, as
    a NAT that forgot the flow): checkNow() finds it dead within its 1 s timeout, long
    before the heartbeat would, and the socket resumes the session once the server runs."""
    result = foreground.result(transport)
    assert result["healthy"] is True
    assert result["frozen"] is False
    assert result["detectedMs"] < 2000  # the heartbeat alone: ping_interval + ping_timeout
    assert result["recovered"] is True
    assert result["transport"] == transport
    assert result["echo"] == "after"


def test_installs_as_a_package_directory(server: Server, tmp_path: Path) -> None:
    """`npm install <dir>` links the package directory into node_modules: `import "anywire"`
    resolves through package.json's exports, and the client connects from there."""
    assert NODE is not None, "node is required (CI installs it)"
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "anywire").symlink_to(ROOT / "anywire" / "clients" / "js")
    script = (
        'import { connect, VERSION } from "anywire";'
        'import pkg from "anywire/package.json" with { type: "json" };'
        f'const s = connect({{ url: "{server.url}", transports: ["longpoll"],'
        f' getToken: () => "{make_token("pkg")}" }});'
        "await s.ready(); console.log(JSON.stringify([VERSION, pkg.version, s.transport]));"
        "await s.close();"
    )
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    version, pkg_version, transport = json.loads(proc.stdout.strip().splitlines()[-1])
    assert version == pkg_version == anywire.__version__
    assert transport == "longpoll"


def test_server_serves_every_module_the_client_imports(server: Server) -> None:
    """Installing from the server's URL: every file of the package directory is served."""
    folder = ROOT / "anywire" / "clients" / "js"
    names = [p.name for p in folder.iterdir() if p.suffix == ".js" or p.name == "package.json"]
    assert {"fetchsse.js", "runtime.js", "lifecycle.js", "package.json"} <= set(names)
    with httpx.Client(base_url=server.url) as http:
        for name in names:
            res = http.get(f"/anywire/client/{anywire.__version__}/{name}")
            assert res.status_code == 200, name
            assert res.content == (folder / name).read_bytes()
