"""A throwaway redis-server for the benchmarks that need one: a free 127.0.0.1 port,
nothing saved to disk, ready (it answered PING) when the constructor returns."""

from __future__ import annotations

import subprocess
import time

from .runner import free_port

__all__ = ["RedisProcess"]


class RedisProcess:
    """``redis-server`` on a free port; :meth:`stop` ends it."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while self.cli("ping").stdout.strip() != b"PONG":
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer")
            time.sleep(0.05)

    def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """``redis-cli`` against this server (bounded: 2 s)."""
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, timeout=2
        )

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        self.proc.terminate()
        self.proc.wait(10)
