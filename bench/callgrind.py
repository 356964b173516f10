"""Counting with valgrind's callgrind, as every ``bench/*_instructions.py`` script does:
start a process under it, switch its counting on and off, and read the count it prints
when the process ends (``Collected : N`` on its standard error).

Two shapes:

* :func:`server`: ``python *args --port P`` from a tree (the bench app, a peer), with
  counting off until the caller switches it on (:func:`instrument`), so start-up and
  shutdown are left out; the count is read once the server is stopped (SIGINT).
* :func:`run_counted`: one whole child run, counted from start to end (compare two runs
  of different lengths to take the start-up out).

Callgrind counts user space only: the kernel's share (accepts, reads, writes) is not in
these figures. ``valgrind`` must follow no shell shim, so the interpreter is always the
real executable.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Counted",
    "check_installed",
    "collected",
    "instrument",
    "python",
    "run_counted",
    "server",
    "wait_up",
]


def python() -> str:
    """The real interpreter (not a shim: valgrind follows no child)."""
    return os.path.realpath(sys.executable)


def check_installed() -> None:
    """Exit with a hint when valgrind's tools are missing."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind (apt-get install -y valgrind)")


def collected(stderr: str) -> int:
    """The count callgrind printed last (``Collected : N``); exits if it printed none."""
    counts = re.findall(r"Collected : (\d+)", stderr)
    if not counts:
        raise SystemExit(f"callgrind printed no count: {stderr[-1000:]}")
    return int(counts[-1])


def instrument(pid: int, state: str) -> None:
    """Switch callgrind's counting in ``pid`` on or off (``state``: on / off)."""
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the bench app on ``port`` answers (a started ``proc`` that dies: exit)."""
    deadline = time.monotonic() + 300  # slow start-up under valgrind
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ctl/stats", timeout=5) as r:
                r.read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"the server did not start: {err[-1000:]}") from None
            time.sleep(0.5)


@dataclass
class Counted:
    """A server running under callgrind (:func:`server`); ``instructions`` is set once
    it has stopped."""

    proc: subprocess.Popen[bytes]
    port: int
    instructions: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextmanager
def server(args: list[str], tree: Path, port: int, keep: str | None = None) -> Iterator[Counted]:
    """``python *args --port PORT`` run from ``tree`` under callgrind with counting off,
    once it answers. On leaving the block (normally) the server is stopped with SIGINT
    and the count read into ``instructions``; ``keep``: a path to copy callgrind's
    profile to (for ``callgrind_annotate``)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={tmp}/callgrind.out", python(), *args, "--port", str(port),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.Popen(
            cmd, env=env, cwd=str(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        running = Counted(proc, port)
        try:
            wait_up(port, proc)
            yield running
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        running.instructions = collected(err.decode())
        if keep is not None:
            shutil.copy(f"{tmp}/callgrind.out", keep)


def run_counted(argv: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> int:
    """The instructions of one whole run of ``python *argv`` under callgrind (start-up
    included); exits if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out",
             python(), *argv],
            capture_output=True, text=True, env=env, timeout=timeout,
        )  # fmt: skip
    if run.returncode != 0:
        raise SystemExit(f"callgrind run failed: {run.stderr[-1000:]}")
    return collected(run.stderr)
