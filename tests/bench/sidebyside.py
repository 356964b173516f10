"""Runs of a command-line tool that start side by side: for tests whose time is mostly a
subprocess's fixed window (``anywire bench --duration``) and its start. Each key's run
starts, in a thread of its own, the first time any key's result is asked for; each test
asserts on its own run."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["SideBySide"]

T = TypeVar("T")


class SideBySide(Generic[T]):
    """``run(*args)`` for every ``key: args`` of ``runs``, all started at the first
    :meth:`result`."""

    def __init__(self, run: Callable[..., T], runs: dict[str, tuple[str, ...]]) -> None:
        self.run = run
        self.runs = runs
        self.pool = ThreadPoolExecutor(len(runs))
        self.futures: dict[str, Future[T]] = {}

    def result(self, key: str, timeout: float = 120) -> T:
        """What ``key``'s run returned (or raised), waited for at most ``timeout`` s."""
        if not self.futures:
            self.futures = {k: self.pool.submit(self.run, *a) for k, a in self.runs.items()}
        return self.futures[key].result(timeout=timeout)

    def close(self) -> None:
        """Wait for the runs started (each bounded by its own subprocess timeout)."""
        self.pool.shutdown(wait=True)
