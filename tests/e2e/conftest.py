"""Fixtures for end-to-end tests: real uvicorn processes on 127.0.0.1 and JWT minting."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from .testapp import AUDIENCE, SECRET

ROOT = Path(__file__).resolve().parents[2]
TRANSPORTS = ("websocket", "sse", "longpoll")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# How long a server may take to start is bounded by its progress, not by a fixed time. A
# start costs about 0.5 s of CPU (imports); on a loaded machine that is what takes the
# time: at load 16, four servers started side by side answered after 10-19 s (session 30's
# flakes notes), and a fixed 15 s failed test_hosts' setup at load 18.
START_STALL = 15.0
"""Seconds the starting server's CPU time may stand still: then it is stuck, not slow."""
START_CAP = 120.0
"""Seconds in all, however busy it keeps."""


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid`` so far, all its threads, to the nanosecond
    (/proc/PID/task/*/schedstat: /proc/PID/stat counts 10 ms ticks, and a starved process
    may run for less than a tick between two probes)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def wait_serving(
    proc: subprocess.Popen[bytes], url: str, stall: float = START_STALL, log: Path | None = None
) -> None:
    """Wait until ``url`` answers 200. Fails (killing ``proc``) when ``proc`` exits, when
    its CPU time has not grown for ``stall`` seconds, or after START_CAP seconds. One
    client for every probe: ``httpx.get`` builds a client and its TLS context each time,
    33 ms of CPU taken from the server it waits for (a probe every 0.05 s)."""
    started = moved = time.monotonic()
    cpu = -1.0
    with httpx.Client(timeout=0.5) as http:
        while True:
            if proc.poll() is not None:
                tail = log.read_text()[-2000:] if log is not None else ""
                raise RuntimeError(f"server exited: {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(url).status_code == 200:
                    return
            now, spent = time.monotonic(), _cpu_seconds(proc.pid)
            if spent > cpu:
                cpu, moved = spent, now
            if now - moved > stall or now - started > START_CAP:
                proc.kill()
                raise RuntimeError(
                    f"server did not start: {now - started:.1f} s, {cpu:.2f} s of CPU, "
                    f"none in the last {now - moved:.1f} s"
                )
            time.sleep(0.05)


def make_token(sub: str = "alice", ttl: float = 600, **claims: object) -> str:
    now = int(time.time())
    payload = {"sub": sub, "exp": now + ttl, "iat": now, "aud": AUDIENCE, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


@dataclass
class Server:
    """A running anywire test server."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    args: tuple[str, ...] = ()
    app: str = "tests.e2e.testapp:app"

    def stop(self, sig_term: bool = True, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            if sig_term:
                self.proc.terminate()
            else:
                self.proc.kill()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # A server that will not stop is a bug to see, not a hang: record where it is
            # stuck (py-spy, when installed), then kill it so the suite goes on.
            stacks = _stacks(self.proc.pid)
            self.proc.kill()
            self.proc.wait(5)
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise AssertionError(
                f"server on port {self.port} did not stop within {timeout} s\n"
                f"--- stacks ---\n{stacks}\n--- log ---\n{tail}"
            ) from None

    def restart(self) -> None:
        self.stop()
        fresh = start_server(self.env, self.port, self.log, self.args, app=self.app)
        self.proc = fresh.proc


def _stacks(pid: int) -> str:
    spy = shutil.which("py-spy")
    if spy is None:
        return "(py-spy not installed)"
    try:
        out = subprocess.run(
            [spy, "dump", "--pid", str(pid), "--locals"], capture_output=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "(py-spy timed out)"
    return (out.stdout + out.stderr).decode(errors="replace")[-8000:]


def start_server(
    env_overrides: dict[str, str],
    port: int | None = None,
    log: Path | None = None,
    args: tuple[str, ...] = (),
    app: str = "tests.e2e.testapp:app",
    health: str = "/anywire/health",
) -> Server:
    """``anywire serve app`` on ``port`` (a free one by default), once it answers."""
    return spawn_server(env_overrides, port, log, args, app, health).ready()


def start_servers(starting: list[Starting]) -> list[Server]:
    """Wait for servers spawned side by side (:func:`spawn_server`): their start-up (mostly
    imports) overlaps on the cores instead of running one after another. If one does not
    come up, the others are stopped too."""
    ready: list[Server] = []
    try:
        for s in starting:
            ready.append(s.ready())
    except BaseException:
        for s in starting:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(5)
        raise
    return ready


@dataclass
class Starting:
    """A server process spawned by :func:`spawn_server`, not yet known to answer."""

    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    log: Path
    args: tuple[str, ...]
    app: str
    health: str

    def ready(self, stall: float = START_STALL) -> Server:
        """The server once ``health`` answers 200 (bounded: :func:`wait_serving`)."""
        url = f"http://127.0.0.1:{self.port}"
        wait_serving(self.proc, url + self.health, stall, self.log)
        return Server(url, self.port, self.proc, self.env, self.log, self.args, self.app)


def spawn_server(
    env_overrides: dict[str, str],
    port: int | None = None,
    log: Path | None = None,
    args: tuple[str, ...] = (),
    app: str = "tests.e2e.testapp:app",
    health: str = "/anywire/health",
) -> Starting:
    """Start ``anywire serve app`` and return at once: :meth:`Starting.ready` waits."""
    port = port or free_port()
    # The checkout first; a PYTHONPATH in env_overrides (a test's own modules) after it.
    path = os.pathsep.join(filter(None, (str(ROOT), env_overrides.get("PYTHONPATH"))))
    env = {**os.environ, **env_overrides, "PYTHONPATH": path}
    log = log or Path(f"/tmp/anywire-e2e-{port}.log")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "anywire.server.cli",
                "serve",
                app,
                "--port",
                str(port),
                "--log-level",
                "warning",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Starting(proc, port, env_overrides, log, tuple(args), app, health)


@contextlib.contextmanager
def running_demo() -> Iterator[str]:
    """``anywire demo`` (the README's first command) on a free port; yields its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "anywire.server.cli", "demo", "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_serving(proc, url + "/anywire/health")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One server per test module with short timings."""
    srv = start_server({})
    yield srv
    srv.stop()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Every end-to-end behaviour runs on each transport."""
    return str(request.param)
