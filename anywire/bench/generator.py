"""Build and drive the C load generator (``gen.c``, compiled with gcc at first use).

The generator is a single epoll loop in C, so it stays far below the server's cost per
message; it reports its own CPU share, so a saturated generator shows in the results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["Generator", "build", "cpu_prefix"]

SOURCE = Path(__file__).with_name("gen.c")


def build() -> Path:
    """Compile gen.c into a per-user cache (once per source version); returns the binary."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "anywire-bench"
    binary = cache / f"gen-{digest}"
    if binary.exists():
        return binary
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("anywire bench needs a C compiler (gcc or cc) for its load generator")
    cache.mkdir(parents=True, exist_ok=True)
    # A name of this process's own: processes building at once (the suite's modules side by
    # side, on an empty cache) would otherwise rename each other's half-linked output, or
    # find it gone. The last rename wins; each one puts a whole binary in place.
    tmp = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    try:
        subprocess.run(
            [compiler, "-O2", "-o", str(tmp), str(SOURCE), "-lm"], check=True, capture_output=True
        )
        tmp.replace(binary)
    finally:
        tmp.unlink(missing_ok=True)
    return binary


def cpu_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` when available and the machine has that CPU, else nothing."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    if cpu >= (os.cpu_count() or 1):
        return []
    return ["taskset", "-c", str(cpu)]


class Generator:
    """One run of the generator process: set up connections, then measure once."""

    def __init__(
        self,
        port: int,
        dialect: str,
        workload: str,
        mix: dict[str, int],
        size: int = 100,
        cpu: int | None = 1,
        on_progress: Callable[[str], None] | None = None,
        host: str = "127.0.0.1",
        vhost: str | None = None,
        token: str | None = None,
        rx_every: int | None = None,
    ) -> None:
        """``host`` is an IPv4 address; ``vhost`` the Host header (default ``host``);
        ``token`` a bearer token for negotiate (passed in the environment, not argv);
        ``rx_every``: None (default): anywire clients send ``rx`` by the rule the server
        advertises at negotiate, as the protocol's clients do (a drawn count, bytes,
        time; every 16 frames if it advertises none); N: after exactly N frames, for
        comparisons; 0: never, to measure what the receipts cost."""
        mix_arg = ",".join(f"{k}:{v}" for k, v in mix.items() if v)
        env = {**os.environ, "ANYWIRE_BENCH_TOKEN": token or ""}
        cmd = [
            *cpu_prefix(cpu),
            str(build()),
            "--host", host,
            "--vhost", vhost or host,
            "--port", str(port),
            "--dialect", dialect,
            "--workload", workload,
            "--mix", mix_arg,
            "--size", str(size),
            *(() if rx_every is None else ("--rx-every", str(rx_every))),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self.log: list[str] = []
        progress = on_progress or (lambda line: None)
        self._stderr = threading.Thread(
            target=_pump, args=(self.proc.stderr, self.log, progress), daemon=True
        )
        self._stderr.start()

    def ready(self) -> dict[str, Any]:
        """Wait until every connection is set up (or failed)."""
        return self._expect("READY")

    def measure(self, secs: float) -> dict[str, Any]:
        """Count deliveries for ``secs`` seconds; returns the generator's result."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"GO {secs}\n")
        self.proc.stdin.flush()
        result = self._expect("RESULT")
        self.proc.wait(timeout=30)
        return result

    def stop(self) -> None:
        """End the generator (closing every connection)."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.join(5)  # every line it wrote is in self.log

    def _expect(self, tag: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(tag + " "):
                return dict(json.loads(line[len(tag) + 1 :]))
        raise RuntimeError(f"generator exited without {tag}: {' | '.join(self.log[-5:])}")


def _pump(stream: IO[str] | None, log: list[str], progress: Callable[[str], None]) -> None:
    if stream is None:
        return
    for line in stream:
        line = line.rstrip()
        log.append(line)
        progress(line)


if __name__ == "__main__":  # build only: python -m anywire.bench.generator
    print(build(), file=sys.stdout)
