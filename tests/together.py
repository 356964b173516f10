"""Per-transport runs that start together: for end-to-end tests whose time is mostly
waiting (a token's lifetime, an idle window), one window instead of one per transport.

A module-scoped :class:`Together` starts every key's coroutine on the module's event loop
the first time any key is asked for; each parametrized test awaits its own run and
asserts on what it returns, so every transport still has its own test and verdict. Use
it only where the runs cannot disturb one another (their own users, sessions and
proxies).

Where the runs need one fault that is global (a node killed, Redis paused), a
:class:`Meeting` takes that step once, when every run has come to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["Meeting", "Together"]

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


class Meeting:
    """One step (a fault, a restart) taken once for the runs of every key: each run calls
    :meth:`meet` where it is ready for it; the last one to arrive takes ``step()``, and
    every caller returns once it is done. A run that never arrives (it failed) holds the
    others until their :meth:`Together.result` timeout."""

    def __init__(self, keys: Iterable[str], step: Callable[[], Awaitable[None]]) -> None:
        self.waiting = set(keys)
        self.step = step
        self.done = asyncio.Event()

    async def meet(self, key: str) -> None:
        """Arrive as ``key``; return once the step was taken."""
        self.waiting.discard(key)
        if not self.waiting and not self.done.is_set():
            try:
                await self.step()
            finally:
                self.done.set()
        await self.done.wait()
