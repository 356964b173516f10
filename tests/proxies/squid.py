"""Debian's squid as a forward proxy in front of the test servers.

:func:`start_squid` writes ``squid.conf`` (Debian's default access rules: CONNECT only to
port 443, so a ``ws://`` tunnel is refused, as behind a stock corporate squid) into a
temporary prefix and runs squid in the foreground from there. squid must be installed
(``.ci/run`` installs Debian's package).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import free_port

from .nginx import stop_process

HERE = Path(__file__).resolve().parent
SQUID = shutil.which("squid") or "/usr/sbin/squid"


@dataclass
class Squid:
    """A running squid: ``url`` is its proxy address."""

    port: int
    proc: subprocess.Popen[bytes]
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, self.prefix)


def start_squid() -> Squid:
    """Start squid on a free port; returns once it accepts connections (bounded)."""
    prefix = Path(tempfile.mkdtemp(prefix="anywire-squid-"))
    prefix.chmod(0o777)  # squid drops root for its effective user, which writes the logs
    port = free_port()
    conf = (HERE / "squid.conf").read_text()
    conf = conf.replace("{LISTEN}", str(port)).replace("{PREFIX}", str(prefix))
    (prefix / "squid.conf").write_text(conf)
    proc = subprocess.Popen(
        [SQUID, "-N", "-f", str(prefix / "squid.conf")],
        stdout=subprocess.DEVNULL,
        stderr=open(prefix / "stderr.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"squid exited: {(prefix / 'stderr.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return Squid(port, proc, prefix)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("squid did not start within 15 s")
