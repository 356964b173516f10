"""``anywire serve --workers N --redis URL``: N node processes on one listening socket."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from typing import Any

from .cliopts import heartbeat_args, http_limit_args, http_limits, log_args

__all__ = ["run_workers"]


def run_workers(args: argparse.Namespace) -> int:
    """``--workers N --redis URL``: N node processes accepting on one listening socket.

    Each worker is a full node (its own sessions, node id and Redis subscription), so they
    need the shared broker like nodes on different machines. The parent only binds the
    socket, starts the workers and passes SIGTERM/SIGINT on; it does not restart a worker
    that dies (run it under a process supervisor).
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(2048)
    listener.set_inheritable(True)
    fd = listener.fileno()
    command = [
        sys.executable,
        "-m",
        "anywire.server.cli",
        "serve",
        args.target,
        "--fd",
        str(fd),
        "--redis",
        args.redis,
        *log_args(args),
        *http_limit_args(http_limits(args)),
        *heartbeat_args(args),
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
    workers = [subprocess.Popen(command, pass_fds=[fd]) for _ in range(args.workers)]

    stopping: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [worker.wait() for worker in workers]
    listener.close()
    if metrics is not None:
        for worker in workers:
            metrics.worker_ended(worker.pid)
        metrics.close()
    # uvicorn re-raises the signal it shut down on: a worker ended by the signal we
    # passed on stopped cleanly.
    failed = [c for c in codes if c != 0 and -c not in stopping]
    return failed[0] if failed else 0
