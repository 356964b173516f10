"""Small stand-ins for the asyncio queue and event uvicorn's WebSocket protocol holds for
every connection (issue #17: memory per idle connection).

uvicorn's sans-I/O protocol keeps an :class:`asyncio.Queue` of received ASGI messages and
an :class:`asyncio.Event` for "the socket is writable". Each allocates its deques up
front: about 3 KB per connection, most of what an idle connection costs beyond the
socket. The protocol uses a fraction of their API (``put_nowait``, ``get``, ``empty``;
``set``, ``clear``, ``wait``), so :class:`Inbox` and :class:`Gate` provide exactly that,
with the same semantics, and allocate their waiter lists only while someone waits.

Both take the protocol's event loop when made: on Python 3.11
``asyncio.get_running_loop()`` is a ``getpid()`` system call, and the reader waits in
:meth:`Inbox.get` for every message it reads (docs/perf/cpu.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Gate", "Inbox"]


def _wake_first(waiters: list[asyncio.Future[None]] | None) -> None:
    if waiters:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
                return


class Inbox:
    """A FIFO of ASGI messages: what uvicorn's protocol uses of :class:`asyncio.Queue`.

    Unbounded, like the queue uvicorn creates. Several concurrent getters are served in
    arrival order, and a getter cancelled after being woken passes the wake-up on.
    """

    __slots__ = ("_items", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``loop``: the loop its getters run in (None: the running loop, looked up
        at each wait)."""
        self._loop = loop
        # A list, not a deque: an empty deque costs ~760 bytes, an empty list 56, and
        # the queue holds a handful of messages at most (uvicorn pauses reading after
        # each message until the app has taken it).
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        _wake_first(self._waiters)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            loop = self._loop or asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    _wake_first(self._waiters)  # woken, then cancelled: pass it on
                raise
            finally:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None
        return self._items.pop(0)


class Gate:
    """A flag coroutines can wait for: what uvicorn's protocol uses of
    :class:`asyncio.Event` (``set``, ``clear``, ``is_set``, ``wait``). Starts set."""

    __slots__ = ("_loop", "_open", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``loop``: as for :class:`Inbox`."""
        self._loop = loop
        self._open = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if self._open:
            return True
        loop = self._loop or asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True
