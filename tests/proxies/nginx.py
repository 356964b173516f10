"""Real nginx in front of a test server, emulating a restrictive intermediary.

Each ``*.conf`` beside this file is an nginx configuration with ``{LISTEN}`` and
``{UPSTREAM}`` placeholders. :func:`start_nginx` writes one into a temporary prefix and
runs nginx in the foreground from there (no root config, no daemon); the returned object
stops it. nginx must be installed (``.ci/run`` installs Debian's package).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import Server, free_port, start_server

HERE = Path(__file__).resolve().parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Nginx:
    """A running nginx: ``url`` is its listening address."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, self.prefix)


def stop_process(proc: subprocess.Popen[bytes], prefix: Path) -> None:
    """Stop a proxy process run from a temporary prefix (bounded), then remove the prefix."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    shutil.rmtree(prefix, ignore_errors=True)


def start_nginx(name: str, upstream: int, **ports: int) -> Nginx:
    """Start nginx with ``<name>.conf`` proxying to 127.0.0.1:``upstream``."""
    port = free_port()
    conf = (HERE / f"{name}.conf").read_text()
    conf = conf.replace("{LISTEN}", str(port)).replace("{UPSTREAM}", str(upstream))
    for key, value in ports.items():
        conf = conf.replace("{" + key.upper() + "}", str(value))
    return run_nginx(name, conf, port)


def run_nginx(name: str, conf: str, port: int, files: dict[str, str] | None = None) -> Nginx:
    """Run nginx with the main configuration ``conf`` (listening on ``port``) from a
    temporary prefix holding ``logs/``, ``tmp/`` and ``files`` (name -> text, for its
    ``include``s); returns once it accepts connections (bounded)."""
    prefix = Path(tempfile.mkdtemp(prefix=f"anywire-nginx-{name}-"))
    (prefix / "logs").mkdir()
    (prefix / "tmp").mkdir()
    for file_name, text in (files or {}).items():
        (prefix / file_name).write_text(text)
    (prefix / "nginx.conf").write_text(conf)
    cmd = [
        NGINX, "-p", str(prefix), "-c", "nginx.conf",
        "-e", str(prefix / "logs" / "error.log"), "-g", "daemon off;",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"nginx {name} exited: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Nginx(name, port, proc, prefix)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"nginx {name} did not listen within 10 s")


RESTRICTIVE = ("ws-blocked", "buffering", "short-idle")


@contextlib.contextmanager
def restrictive_proxies(upstream: int) -> Iterator[dict[str, Nginx]]:
    """One nginx per restrictive configuration, all in front of ``upstream``."""
    started: dict[str, Nginx] = {}
    try:
        for name in RESTRICTIVE:
            started[name] = start_nginx(name, upstream)
        yield started
    finally:
        for proxy in started.values():
            proxy.stop()


# A test server's settings whose heartbeats (1 s) and poll window (3 s) are shorter than
# the short-idle proxy's 5 s read timeout.
PROXY_TEST_SERVER = {"AW_PING_INTERVAL": "1", "AW_POLL_WINDOW": "3"}


def proxy_test_server(app: str = "tests.e2e.testapp:app") -> Server:
    """A test server with PROXY_TEST_SERVER's settings, once it answers."""
    return start_server(PROXY_TEST_SERVER, app=app)
