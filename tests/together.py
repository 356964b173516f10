"""Per-transport runs that start together: for end-to-end tests whose time is mostly
waiting (a token's lifetime, an idle window), one window instead of one per transport.

A module-scoped :class:`Together` starts every key's coroutine on the module's event loop
the first time any key is asked for; each parametrized test awaits its own run and
asserts on what it returns, so every transport still has its own test and verdict. Use
it only where the runs cannot disturb one another (their own users, sessions and
proxies).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["Together"]

T = TypeVar("T")


class Together(Generic[T]):
    """``run(key)`` for every key in ``keys``, all started at the first :meth:`result`."""

    def __init__(self, keys: Iterable[str], run: Callable[[str], Awaitable[T]]) -> None:
        self.keys = tuple(keys)
        self.run = run
        self.tasks: dict[str, asyncio.Future[T]] = {}

    async def result(self, key: str, timeout: float) -> T:
        """What ``run(key)`` returned (or raised), waited for at most ``timeout`` s."""
        if not self.tasks:
            self.tasks = {k: asyncio.ensure_future(self.run(k)) for k in self.keys}
        return await asyncio.wait_for(asyncio.shield(self.tasks[key]), timeout)

    async def aclose(self) -> None:
        """Cancel what is still running (a test failed or was deselected) and wait."""
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
