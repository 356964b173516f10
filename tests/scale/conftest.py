"""Real processes for the scale-out tests: redis-server, anywire nodes, nginx.

Every fixture starts real binaries on free 127.0.0.1 ports: ``redis-server`` (killable
and restartable on the same port), 2-3 anywire nodes (uvicorn subprocesses sharing that
Redis and one signing secret) and nginx from /work/shared/reference/nginx configs (round
robin, not sticky, or sticky by cookie).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    TRANSPORTS,
    Server,
    Starting,
    free_port,
    spawn_server,
    start_servers,
)

# The configurations docs/scaling.md documents are the ones tested.
NGINX_CONFS = Path(__file__).resolve().parents[2] / "docs" / "nginx"
SECRET = "scale-test-shared-secret-0123456789"


def wait_for(check: object, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``check()`` (bounded) until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class RedisServer:
    """A redis-server process on a fixed port (kill/start keep the port)."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, 10, "redis-server to answer")

    def ping(self) -> bool:
        try:
            out = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"],
                capture_output=True, timeout=2, check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return out.stdout.strip() == b"PONG"

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, timeout=5, check=True
        )
        return out.stdout.decode()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@dataclass
class Nginx:
    """nginx in front of the nodes, from a temporary prefix."""

    port: int
    prefix: Path
    proc: subprocess.Popen[bytes]
    upstreams: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.prefix, ignore_errors=True)


def start_nginx(conf_name: str, upstreams: list[int]) -> Nginx:
    """nginx with ``conf_name`` from docs/nginx ({LISTEN}, {UPSTREAM_A/B/C})."""
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="aw-nginx-"))
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir()
    text = (NGINX_CONFS / conf_name).read_text().replace("{LISTEN}", str(port))
    for name, up in zip("ABC", upstreams, strict=False):
        text = text.replace(f"{{UPSTREAM_{name}}}", str(up))
    (prefix / "nginx.conf").write_text(text)
    proc = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", "nginx.conf", "-e", str(prefix / "logs/error.log"),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ngx = Nginx(port, prefix, proc, upstreams)

    def up() -> bool:
        try:
            return httpx.get(ngx.url + "/anywire/health", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 10, "nginx to proxy")
    except AssertionError:
        ngx.stop()
        raise
    return ngx


def start_node(
    redis: RedisServer,
    port: int | None = None,
    poll_window: float = 2.0,
    env: dict[str, str] | None = None,
) -> Server:
    """One anywire node on the shared Redis (``env``: more AW_* settings)."""
    return spawn_node(redis, port, poll_window, env).ready()


def start_nodes(
    redis: RedisServer, count: int = 2, poll_window: float = 2.0, env: dict[str, str] | None = None
) -> list[Server]:
    """``count`` nodes alike on the shared Redis, started side by side."""
    return start_servers([spawn_node(redis, None, poll_window, env) for _ in range(count)])


def spawn_node(
    redis: RedisServer, port: int | None, poll_window: float, env: dict[str, str] | None
) -> Starting:
    base = {"ANYWIRE_SECRET": SECRET, "AW_RESUME_WINDOW": "10", "AW_POLL_WINDOW": str(poll_window)}
    return spawn_server({**base, **(env or {})}, port, args=("--redis", redis.url))


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def nodes(redis: RedisServer) -> Iterator[list[Server]]:
    """Two nodes on the module's Redis."""
    started = start_nodes(redis)
    yield started
    for node in started:
        node.stop()


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)
