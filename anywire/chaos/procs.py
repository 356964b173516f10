"""The real processes of a chaos run: ``redis-server``, anywire nodes and nginx.

Each is started on a free 127.0.0.1 port and can be hit with real faults: SIGKILL,
SIGTERM (a graceful stop, timed), SIGSTOP/SIGCONT (a paused process: Redis frozen, a
node starved of CPU). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

__all__ = ["NginxProc", "NodeProc", "RedisProc", "free_port", "wait_until"]


def free_port() -> int:
    """A TCP port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll ``check()`` every 50 ms until it is truthy; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def _rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` in KB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class _Proc:
    """A child process that can be killed, stopped, paused and resumed."""

    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen (its sockets stay open)."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)

    def rss_kb(self) -> int:
        return 0 if self.proc is None else _rss_kb(self.proc.pid)


class RedisProc(_Proc):
    """``redis-server`` on a fixed port (a restart keeps the port), no persistence."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.ping, 10, "redis-server to answer")

    def ping(self) -> bool:
        return self.command("PING") == "+PONG"

    def command(self, *args: str) -> str:
        """One command over a plain socket (inline protocol); the first reply line."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall((" ".join(args) + "\r\n").encode())
                return s.recv(65536).decode(errors="replace").split("\r\n", 1)[0]
        except OSError:
            return ""

    def used_memory(self) -> int:
        """``used_memory`` from INFO, in bytes (0 if unreachable)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"INFO memory\r\n")
                data = b""
                while b"used_memory:" not in data or not data.endswith(b"\r\n\r\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if data.count(b"\r\n") > 40:
                        break
        except OSError:
            return 0
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":", 1)[1])
        return 0


class NodeProc(_Proc):
    """One ``anywire serve APP --redis URL`` node."""

    def __init__(
        self, app: str, redis_url: str, env: dict[str, str], log_dir: Path, port: int | None = None
    ) -> None:
        self.app = app
        self.redis_url = redis_url
        self.env = env
        self.port = port or free_port()
        self.log = log_dir / f"node-{self.port}.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start (or restart, same port) and wait until it answers its health check."""
        self.starts += 1
        out = self.log.open("ab")
        out.write(f"\n=== start {self.starts} at {time.time():.3f}\n".encode())
        out.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "anywire.server.cli", "serve", self.app,
             "--port", str(self.port), "--redis", self.redis_url, "--log-level", "warning"],
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        out.close()
        wait_until(self.healthy, timeout, f"node on port {self.port} to start")

    def healthy(self) -> bool:
        if not self.running:
            raise RuntimeError(f"node {self.port} exited: {self.log_tail()}")
        try:
            return httpx.get(self.url + "/anywire/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self, timeout: float = 15.0) -> float:
        """SIGTERM and wait for the exit; returns the seconds it took (raises beyond
        ``timeout``, after a SIGKILL)."""
        if not self.running:
            return 0.0
        assert self.proc is not None
        started = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Where it hangs goes to its log (anywire.chaos.app dumps its stacks).
            self.proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1.0)
            self.proc.kill()
            self.proc.wait(5)
            raise TimeoutError(
                f"node {self.port} did not stop within {timeout} s (stacks in its log)"
            ) from None
        return time.monotonic() - started

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""


_NGINX = """worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    default_type text/plain;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream rr {{ {servers} }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://rr;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


class NginxProc(_Proc):
    """nginx round robin (no affinity) over the nodes, from a temporary prefix."""

    def __init__(self, upstreams: list[int]) -> None:
        self.port = free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="aw-chaos-nginx-"))
        # fail_timeout 1s, not nginx's 10 s: in a rolling restart every node is briefly
        # down in turn, and with 10 s nginx would count all of them failed at once (502).
        servers = " ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;" for p in upstreams)
        (self.prefix / "logs").mkdir()
        (self.prefix / "tmp").mkdir()
        (self.prefix / "nginx.conf").write_text(_NGINX.format(servers=servers, listen=self.port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("nginx")
        if exe is None and Path("/usr/sbin/nginx").exists():
            exe = "/usr/sbin/nginx"
        if exe is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.proc = subprocess.Popen(
            [exe, "-p", str(self.prefix), "-c", "nginx.conf", "-e",
             str(self.prefix / "logs/error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def up() -> bool:
            try:
                return httpx.get(self.url + "/anywire/health", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        wait_until(up, 10, "nginx to proxy")

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.prefix, ignore_errors=True)
