"""``anywire serve --workers N --redis URL``: N node processes on one listening socket."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from typing import Any

from .cliopts import deflate_args, heartbeat_args, http_limit_args, http_limits, log_args

__all__ = ["BACKLOG", "run_workers"]

BACKLOG = 2048
"""Default length of the listening socket's accept queue (``anywire serve --backlog``),
uvicorn's own default. Linux caps it at ``net.core.somaxconn``. A longer queue showed
no gain in a reconnect storm (it holds more connections whose clients give up while
they wait in it: docs/perf/storm-round3.md)."""


def listeners(host: str, port: int, count: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """The listening sockets of ``count`` workers on ``host:port``: one each on Linux
    (``SO_REUSEPORT``: the kernel spreads connections over them by hash), else one shared.

    Workers sharing one socket take connections in whatever order the kernel wakes them,
    which spread 100 clients 3/97 over 2 workers in one run of bench/workers.py: a busy
    worker kept getting more while the other idled. Elsewhere ``SO_REUSEPORT`` does not
    balance (BSD, macOS), hence the shared socket there.
    """
    balance = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
    out: list[socket.socket] = []
    for _ in range(count if balance else 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if balance:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            # Port 0: the first socket picks one, the others join it.
            sock.bind((host, out[0].getsockname()[1] if out else port))
            sock.listen(backlog)
        except OSError:
            sock.close()
            for other in out:
                other.close()
            raise
        sock.set_inheritable(True)
        out.append(sock)
    return out


def run_workers(args: argparse.Namespace) -> int:
    """``--workers N --redis URL``: N node processes accepting on one port.

    Each worker is a full node (its own sessions, node id and Redis subscription), so they
    need the shared broker like nodes on different machines. The parent only binds the
    listening sockets (:func:`listeners`), starts the workers and passes SIGTERM/SIGINT
    on; it does not restart a worker that dies (run it under a process supervisor).
    """
    socks = listeners(args.host, args.port, args.workers, args.backlog)
    command = [
        sys.executable,
        "-m",
        "anywire.server.cli",
        "serve",
        args.target,
        "--redis",
        args.redis,
        # The worker's server listens on the socket again (uvicorn): same queue length.
        "--backlog",
        str(args.backlog),
        *log_args(args),
        *http_limit_args(http_limits(args)),
        *heartbeat_args(args),
        *deflate_args(args),
    ]
    for name in args.allowed_host or ():
        command += ["--allowed-host", name]
    if args.doctor:
        command.append("--doctor")
    metrics = None
    if args.metrics == "prometheus" or args.metrics_port is not None:
        from .prometheus import WorkersMetrics  # sets PROMETHEUS_MULTIPROC_DIR

        metrics = WorkersMetrics(args.host, args.metrics_port)
        command += ["--metrics", "prometheus"]
    workers = []
    for i in range(args.workers):
        fd = socks[i % len(socks)].fileno()
        workers.append(subprocess.Popen([*command, "--fd", str(fd)], pass_fds=[fd]))
    if len(socks) > 1:
        # Each worker holds its own socket now: when one exits, its socket closes and
        # the kernel stops handing it connections (one held here would queue them).
        for sock in socks:
            sock.close()

    stopping: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [worker.wait() for worker in workers]
    for sock in socks:
        sock.close()
    if metrics is not None:
        for worker in workers:
            metrics.worker_ended(worker.pid)
        metrics.close()
    # uvicorn re-raises the signal it shut down on: a worker ended by the signal we
    # passed on stopped cleanly.
    failed = [c for c in codes if c != 0 and -c not in stopping]
    return failed[0] if failed else 0
