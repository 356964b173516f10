"""transports/eager.py: a coroutine run in the caller until it waits, then as a task;
loop iterations counted for the WebSocket writer's adaptive coalescing; batched writes
run together two iterations later."""

from __future__ import annotations

import asyncio

import pytest

from anywire.transports.eager import Batch, Ticks, run_eagerly


async def test_a_coroutine_that_never_waits_finishes_in_the_call() -> None:
    done: list[str] = []

    async def write() -> None:
        done.append("written")

    assert run_eagerly(write()) is None
    assert done == ["written"]  # before any loop iteration


async def test_an_exception_before_the_first_wait_reaches_the_caller() -> None:
    async def broken() -> None:
        raise OSError("socket gone")

    with pytest.raises(OSError, match="socket gone"):
        run_eagerly(broken())


async def test_a_coroutine_that_waits_goes_on_in_a_task_with_the_value_it_waited_for() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    steps: list[object] = []

    async def write() -> None:
        steps.append("first half")
        steps.append(await gate)
        await asyncio.sleep(0)  # a bare yield, after the handover, is a loop iteration
        steps.append("second half")

    task = run_eagerly(write())
    assert task is not None and steps == ["first half"]
    gate.set_result(7)
    await asyncio.wait_for(task, 5)
    assert steps == ["first half", 7, "second half"]


async def test_a_failure_of_the_awaited_future_is_raised_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[BaseException] = []

    async def write() -> None:
        try:
            await gate
        except ConnectionResetError as exc:
            seen.append(exc)

    task = run_eagerly(write())
    assert task is not None
    gate.set_exception(ConnectionResetError("reset"))
    await asyncio.wait_for(task, 5)
    assert len(seen) == 1 and isinstance(seen[0], ConnectionResetError)


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleanup: list[str] = []

    async def write() -> None:
        try:
            await gate
        finally:
            cleanup.append("finally ran")

    task = run_eagerly(write())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert cleanup == ["finally ran"]
    assert gate.cancelled()  # the task's cancel reached the future it waited on


async def test_ticks_count_iterations_while_asked_and_rest_after() -> None:
    ticks = Ticks()
    first = ticks.now()
    assert ticks.now() == first  # same iteration
    await asyncio.sleep(0)
    assert ticks.now() == first + 1  # the very next iteration
    for _ in range(4):
        await asyncio.sleep(0)  # nobody asks: the count rests
    assert not ticks.armed
    again = ticks.now()
    # Starting again skips a number: the last write is not "the iteration before".
    assert again >= first + 3


def test_ticks_start_afresh_in_a_new_loop_if_the_last_one_ended_armed() -> None:
    ticks = Ticks()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.sleep(0, result=None))

        async def arm() -> None:
            ticks.now()  # the loop stops before its call_soon runs

        loop.run_until_complete(arm())
    finally:
        loop.close()
    assert ticks.armed

    async def ask() -> tuple[int, int]:
        ticks.check_loop()
        a = ticks.now()
        await asyncio.sleep(0)
        return a, ticks.now()

    a, b = asyncio.run(ask())
    assert b == a + 1


async def _iterations(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_batch_runs_its_callbacks_together_two_iterations_later() -> None:
    loop = asyncio.get_running_loop()
    batch, ran = Batch(), []
    first = batch.add(loop, lambda: ran.append("a"))
    second = batch.add(loop, lambda: ran.append("b"))
    assert first is second  # one round for everything added in the iteration
    await _iterations(1)
    assert ran == [] and not first.done()
    await _iterations(1)
    assert ran == ["a", "b"] and first.done()
    third = batch.add(loop, lambda: ran.append("c"))  # after the round: a new one
    assert third is not first
    await asyncio.wait_for(third, 1)
    assert ran == ["a", "b", "c"]


async def test_a_one_hop_batch_runs_its_callbacks_together_one_iteration_later() -> None:
    loop = asyncio.get_running_loop()
    batch, ran = Batch(hops=1), []
    first = batch.add(loop, lambda: ran.append("a"))
    assert batch.add(loop, lambda: ran.append("b")) is first
    assert ran == []  # never in the caller
    await _iterations(1)
    assert ran == ["a", "b"] and first.done()


async def test_a_callback_that_raises_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        batch, ran = Batch(), []

        def broken() -> None:
            raise ValueError("a bug")

        batch.add(loop, broken)
        done = batch.add(loop, lambda: ran.append("after"))
        await asyncio.wait_for(done, 1)
        assert ran == ["after"]
        assert [type(c["exception"]) for c in reported] == [ValueError]
    finally:
        loop.set_exception_handler(None)


def test_a_batch_left_by_an_ended_loop_starts_afresh_in_the_next() -> None:
    batch, ran = Batch(), []

    async def leave_a_round() -> None:
        batch.add(asyncio.get_running_loop(), lambda: ran.append("never"))

    ended = asyncio.new_event_loop()
    try:
        ended.run_until_complete(leave_a_round())  # the loop stops before the round runs
    finally:
        ended.close()
    assert ran == []

    async def next_loop() -> None:
        await asyncio.wait_for(batch.add(asyncio.get_running_loop(), lambda: ran.append("new")), 1)

    asyncio.run(next_loop())
    assert ran == ["new"]
