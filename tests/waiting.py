"""Waiting on a condition in an async test: polled on the test's own loop, always bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["until"]


async def until(check: Callable[[], object], timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll ``check()`` every ``poll`` seconds without blocking the loop (the clients and servers of
    the test go on meanwhile) until it is true; fail naming ``what`` after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll)
