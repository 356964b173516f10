"""Write at once, in the caller, when nothing is waiting: eager coroutines and loop ticks.

A WebSocket write is a coroutine (ASGI ``send``) that nearly always finishes without
waiting: uvicorn hands the bytes to the kernel and returns, and only waits while the
socket's buffer is full. Starting a task for it costs a task object, two loop iterations
and a wake-up per connection (with 1,000 clients in a room that was most of the latency
of one event; see docs/perf/latency.md). :func:`run_eagerly` runs such a coroutine in the
caller until it would wait, and only then hands the rest to a task (what Python 3.12's
``eager_start`` does, for 3.11 too, and for one coroutine at a time).

:class:`Ticks` tells writers whether they already wrote in this loop iteration: a
connection that did has more coming in the same iteration (a burst), and batches it.
:class:`Batch` runs those batched writes two iterations later, all from one callback,
instead of a task per connection.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

__all__ = ["Batch", "Ticks", "carry_on", "run_eagerly"]


def run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` now, up to its first wait. None if it finished (an exception it
    raises propagates here); else a task carrying it on from where it waits (the task
    can be cancelled and awaited like any other)."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(carry_on(coro, waiting))


async def carry_on(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Finish ``coro``, stepped by hand until it yielded ``waiting`` (what it waits on),
    in the task awaiting this."""
    # (A native coroutine around the generator: create_task takes only coroutines.)
    await _resume(coro, waiting)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, None, None]:
    """Hand the task what ``coro`` waits on (a future, or None for one loop iteration),
    then step ``coro`` on with the outcome: a cancellation of the task is thrown into
    ``coro`` where it waits, as it would have been had it run in the task from the start."""
    while True:
        thrown: BaseException | None = None
        try:
            yield waiting
        except BaseException as exc:  # the task was cancelled (or its future failed)
            thrown = exc
        try:
            waiting = coro.send(None) if thrown is None else coro.throw(thrown)
        except StopIteration:
            return


class Ticks:
    """Counts loop iterations while writes happen, so that a writer can tell whether it
    wrote in this iteration (``wrote == n``) or in the one before (``wrote == n - 1``).

    A ``call_soon`` moves ``n`` on once per iteration, for as long as someone asked for
    :meth:`now` since the last move; after an iteration in which nobody did, the count
    rests (an idle server schedules nothing) and the next :meth:`now` starts it again,
    with ``n`` one further, so a write before the rest never looks like the iteration
    before. Within an iteration ``n`` may move on once, wherever the callback falls in
    the ready queue: close enough for choosing between writing now and batching.
    """

    __slots__ = ("_loop", "armed", "asked", "n")

    def __init__(self) -> None:
        self.n = 0
        self.armed = False
        self.asked = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> int:
        """The current iteration's number. (Hot path: callers read ``n`` themselves
        when ``armed``, and call this only to start the count.)"""
        self.asked = True
        if not self.armed:
            self.armed = True
            self.n += 1  # rested: whatever was written before is not "the iteration before"
            self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._next)
        return self.n

    def check_loop(self) -> None:
        """Start afresh if the count was left armed by a loop that has ended (the test
        suite runs many loops one after another; called once per connection)."""
        if self.armed and self._loop is not asyncio.get_running_loop():
            self.armed = False

    def _next(self) -> None:
        self.n += 1
        if self.asked:
            self.asked = False
            assert self._loop is not None
            self._loop.call_soon(self._next)
        else:
            self.armed = False


class Batch:
    """Callbacks run together two loop iterations after the first was added: what a task
    per caller that yields once and then runs would do, without a task each (on a busy
    room that was a task and two ready-queue steps per connection per iteration:
    docs/perf/cpu.md). ``Batch(hops=1)``: one iteration later (what a task that yields
    once would do: the reader's answers, docs/perf/echo.md).

    :meth:`add` returns the round's future, done once every callback of the round has
    run (whoever must wait for a batched write awaits it; nobody may cancel it: it is
    shared). A callback added while the round waits joins it. Each callback handles
    its own failures; one that raises anyway goes to the loop's exception handler and
    the others still run.
    """

    __slots__ = ("_first", "_loop", "_pending", "_round")

    def __init__(self, hops: int = 2) -> None:
        # What runs first in a new round (hops: 1 or 2): the round, or a hop before it.
        self._first = self._run if hops == 1 else self._wait
        self._pending: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._round: asyncio.Future[None] | None = None

    def add(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> asyncio.Future[None]:
        """Run ``fn()`` in the round under way, or in a new one ``hops`` iterations from
        now."""
        if self._round is None or self._loop is not loop:
            # (A round left by a loop that ended is dropped: the test suite runs many.)
            self._pending = []
            self._loop = loop
            self._round = loop.create_future()
            loop.call_soon(self._first)
        self._pending.append(fn)
        return self._round

    def _wait(self) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._run)

    def _run(self) -> None:
        pending, self._pending = self._pending, []
        done, self._round = self._round, None
        for fn in pending:
            try:
                fn()
            except Exception as exc:  # a bug of the callback's: the others still run
                assert self._loop is not None
                self._loop.call_exception_handler(
                    {"message": "batched write failed", "exception": exc}
                )
        if done is not None and not done.done():
            done.set_result(None)
