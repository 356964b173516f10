"""Auto-batched publishes: publish script calls made together go to Redis as one pipeline.

:class:`PublishBatcher` takes the publish calls (:class:`~anywire.redis_wire.PublishCall`)
of a node (``RedisBroker.publish``) or of an :class:`~anywire.publisher.AsyncPublisher`
and sends the ones issued in the same loop turn, or while the previous batch of their
lane is in flight, as one non-transactional pipeline of ``EVALSHA`` on one pooled
connection; each caller gets its own reply. One awaited script costs a round trip and a
read and a write on each side; a batch of a few hundred costs about one of each.

The guarantees are the ones of one call at a time:

* **Order.** A stream always goes to the same lane and a lane has at most one batch in
  flight, on one connection, whose commands Redis runs in the order they were written:
  calls to one stream run in the order they were issued (an awaited call is issued before
  the caller's next). Calls to different streams may be reordered (different lanes).
* **Failures** are :class:`~anywire.errors.BrokerUnavailable` to each caller, with
  ``maybe_published`` False when its command never left (no connection, not sent within
  ``wait``, no room in the queue, the batcher closed) or Redis answered that it did not
  run it (NOSCRIPT), and True once its pipeline was written and its reply lost (Redis
  may have run it). ``id=`` keys work as before: a key seen within the window, in
  this batch or an earlier one, returns the first publish's position.
* **NOSCRIPT** (Redis restarted empty, ``SCRIPT FLUSH``): those commands did not run;
  the script is loaded and they are sent again, in order, on the same connection.
* **Redis Cluster** (a ``RedisCluster`` client): a batch is split by the master of
  each call's slot, one pipeline per master (:mod:`anywire.redis_cluster_batch`:
  MOVED/ASK followed and resent without running twice, NOSCRIPT per master).
* **Bounded.** At most ``max_batch`` commands per pipeline, ``lanes`` pipelines in flight
  (one pooled connection each), ``max_queue`` calls queued for a pipeline and as many
  waiting for room in the queue (in order); past that a call fails at once. A call not
  sent within ``wait`` seconds fails (not published); a pipeline's replies are bounded
  together by the pool's socket timeout.

Standard library and redis-py only: the server is not imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from hiredis import pack_command
from redis import Redis as SyncRedis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from .errors import BrokerUnavailable
from .redis_cluster_batch import publish_on_cluster
from .redis_scripts import Script, publish_script
from .redis_wire import PublishCall, publish_failed

__all__ = ["PublishBatcher", "run_calls"]


class _Item:
    """One caller's publish: its call, its future, and when it must have been sent."""

    __slots__ = ("call", "deadline", "fut")

    def __init__(self, call: PublishCall, fut: asyncio.Future[Any], deadline: float) -> None:
        self.call = call
        self.fut = fut
        self.deadline = deadline  # not sent by then: it fails, not published

    def resolve(self, reply: Any) -> None:
        if not self.fut.done():
            self.fut.set_result(reply)

    def fail(self, exc: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)
            self.fut.exception()  # a caller that gave up does not log it as never retrieved


class _Lane:
    """The calls of a share of the streams, and whether a batch of them is in flight."""

    __slots__ = ("busy", "queue")

    def __init__(self) -> None:
        self.queue: deque[_Item] = deque()
        self.busy = False


class PublishBatcher:
    """Send concurrent publish script calls to ``redis`` in pipelines (see the module).

    :param redis: the client whose connection pool carries the pipelines.
    :param max_batch: commands per pipeline at most.
    :param max_queue: calls queued for a pipeline at most, over all lanes; as many more
        wait for room (in order), and past that a call fails at once.
    :param lanes: pipelines in flight at once (streams are spread over them by a hash).
        Two by default: fewer lanes make larger pipelines and cost less CPU per publish
        (bench/publish_throughput.py --lanes 1,2,4,8: about 26, 27, 28 and 35 us at 100
        concurrent callers), and a second lane writes a pipeline while one is answered.
    :param wait: seconds a call waits to be sent (for room in the queue, then for its
        pipeline); not sent by then, it fails with ``maybe_published=False``.
    :param counters: the dict to count in (``pipelines``, ``pipelined`` calls,
        ``largest_pipeline``, ``noscript`` reloads); a new one if not given.
    :param script: the publish script of a call (default: ``PUBLISH`` for every call;
        Sentinel and Cluster: :mod:`anywire.redis_scripts`'s variants).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_batch: int = 500,
        max_queue: int = 10_000,
        lanes: int = 2,
        wait: float = 2.0,
        counters: dict[str, int] | None = None,
        script: Callable[[PublishCall], Script] | None = None,
    ) -> None:
        self.redis = redis
        self.script = script or _plain
        self._cluster = isinstance(redis, aioredis.RedisCluster)

        self.max_batch = max_batch
        self.max_queue = max_queue
        self.wait = wait
        self._lanes = [_Lane() for _ in range(lanes)]
        self._queued = 0  # items in the lanes' queues
        self._overflow: deque[_Item] = deque()  # waiting for room, in issue order
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None  # the next deadline to check
        self._closed: str | None = None
        # Shared with the owner's counters when given (RedisBroker: /anywire/metrics shows
        # broker_pipelines beside broker_published).
        self.counters = counters if counters is not None else {}
        for key in ("pipelines", "pipelined", "largest_pipeline", "noscript"):
            self.counters.setdefault(key, 0)

    async def run(self, call: PublishCall) -> Any:
        """Run ``call`` in the next pipeline of its lane; return the script's reply.

        Raises :class:`~anywire.errors.BrokerUnavailable` as described in the module."""
        if self._closed is not None:
            raise publish_failed(BrokerUnavailable(self._closed), sent=False)
        loop = asyncio.get_running_loop()
        item = _Item(call, loop.create_future(), loop.time() + self.wait)
        if self._overflow or self._queued >= self.max_queue:
            if len(self._overflow) >= self.max_queue:
                raise publish_failed(BrokerUnavailable("publish queue full"), sent=False)
            self._overflow.append(item)
        else:
            self._enqueue(item)
        if self._timer is None:
            # One timer for the whole batcher, not one per call: the calls queue in
            # order of their deadlines, so the expired ones are at the queues' heads.
            self._timer = loop.call_at(item.deadline, self._expire)
        try:
            return await item.fut
        except asyncio.CancelledError:
            item.fut.cancel()  # if not sent yet, it is left out of its pipeline
            raise

    def close(self, reason: str) -> None:
        """Fail every call not yet sent (not published) and refuse new ones; batches in
        flight end with the connections (their callers: ``maybe_published=True``)."""
        self._closed = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        exc = publish_failed(BrokerUnavailable(reason), sent=False)
        for lane in self._lanes:
            while lane.queue:
                lane.queue.popleft().fail(exc)
        while self._overflow:
            self._overflow.popleft().fail(exc)
        self._queued = 0

    # -- queueing ---------------------------------------------------------------------------
    def _expire(self) -> None:
        """Fail the calls past their deadline that are still queued (never sent), and
        set the timer for the next deadline."""
        self._timer = None
        now = asyncio.get_running_loop().time()
        late = publish_failed(
            BrokerUnavailable(f"not sent within {self.wait:g} s (Redis slow or unreachable)"),
            sent=False,
        )
        for lane in self._lanes:
            while lane.queue and lane.queue[0].deadline <= now:
                self._queued -= 1
                lane.queue.popleft().fail(late)
        while self._overflow and self._overflow[0].deadline <= now:
            self._overflow.popleft().fail(late)
        self._refill()
        heads = [lane.queue[0].deadline for lane in self._lanes if lane.queue]
        if self._overflow:
            heads.append(self._overflow[0].deadline)
        if heads:
            self._timer = asyncio.get_running_loop().call_at(min(heads), self._expire)

    def _enqueue(self, item: _Item) -> None:
        lane = self._lanes[zlib.crc32(item.call.stream.encode()) % len(self._lanes)]
        lane.queue.append(item)
        self._queued += 1
        if not lane.busy:
            # Started, not run: the calls made in this loop turn join its first batch.
            lane.busy = True
            task = asyncio.ensure_future(self._drain(lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _refill(self) -> None:
        while self._overflow and self._queued < self.max_queue:
            item = self._overflow.popleft()
            if not item.fut.done():
                self._enqueue(item)

    def _take(self, lane: _Lane) -> list[_Item]:
        batch: list[_Item] = []
        while lane.queue and len(batch) < self.max_batch:
            item = lane.queue.popleft()
            self._queued -= 1
            if not item.fut.done():  # a cancelled caller's call is not sent
                batch.append(item)
        self._refill()
        return batch

    async def _drain(self, lane: _Lane) -> None:
        batch: list[_Item] = []
        try:
            while lane.queue and self._closed is None:
                batch = self._take(lane)
                if batch:
                    await self._send(batch)
        except BaseException as exc:
            # Cancelled, or a failure of ours: no caller of this lane is left waiting.
            for item in batch:
                item.fail(publish_failed(BrokerUnavailable(repr(exc)), sent=True))
            unsent = publish_failed(BrokerUnavailable(repr(exc)), sent=False)
            while lane.queue:
                self._queued -= 1
                lane.queue.popleft().fail(unsent)
            raise
        finally:
            lane.busy = False

    # -- one pipeline -----------------------------------------------------------------------
    async def _send(self, batch: list[_Item]) -> None:
        if self._cluster:
            await self._send_on_cluster(batch)
            return
        pool = self.redis.connection_pool
        try:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            failed = publish_failed(exc, sent=False)
            for item in batch:
                item.fail(failed)
            return
        try:
            await self._exchange(conn, batch)
        finally:
            await pool.release(conn)

    async def _send_on_cluster(self, batch: list[_Item]) -> None:
        """A pipeline per master (:mod:`anywire.redis_cluster_batch`; cancelled, the
        batch's callers are failed by :meth:`_drain`)."""
        await publish_on_cluster(self.redis, batch, self.script, self.counters)

    async def _exchange(self, conn: Any, batch: list[_Item]) -> None:
        """Write ``batch`` on ``conn`` and hand out the replies; once anything was
        written, whatever is not answered may have run (``maybe_published``)."""
        self.counters["pipelines"] += 1
        self.counters["pipelined"] += len(batch)
        self.counters["largest_pipeline"] = max(self.counters["largest_pipeline"], len(batch))
        pending = batch
        load = False
        maybe = False  # whether Redis may have run what is pending
        try:
            for _ in range(3):  # a SCRIPT FLUSH between each load and its retry: give up
                if not pending:
                    return
                # hiredis packs a command in C (redis-py's packer encodes each argument in
                # Python: a third of the batch's cost).
                scripts = [self.script(item.call) for item in pending]
                commands = _loads(scripts) if load else []
                for item, script in zip(pending, scripts, strict=True):
                    call = item.call
                    commands.append(
                        _packed("EVALSHA", script.sha, len(call.keys), *call.keys, *call.args)
                    )
                # A write that fails half-way may still have delivered whole commands of
                # a pipeline; one command cut short never runs.
                maybe = len(commands) > 1
                await conn.send_packed_command([b"".join(commands)], check_health=False)
                maybe = True
                if load:
                    for _ in range(len(commands) - len(pending)):
                        await conn.read_response()
                pending = await self._replies(conn, pending)
                load = True  # what is left got NOSCRIPT: load the script and send it again
                maybe = False
            failed = publish_failed(NoScriptError("the script keeps being flushed"), False)
            for item in pending:
                item.fail(failed)
        except (RedisError, OSError) as exc:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            failed = publish_failed(exc, sent=maybe)
            for item in pending:
                item.fail(failed)
        except BaseException:
            # Cancelled mid-pipeline: the connection's state is unknown, do not reuse it.
            with contextlib.suppress(Exception):
                await conn.disconnect()
            for item in pending:
                item.fail(publish_failed(BrokerUnavailable("publish cancelled"), sent=maybe))
            raise

    async def _replies(self, conn: Any, pending: list[_Item]) -> list[_Item]:
        """Read one reply per item, in order; return the items Redis answered NOSCRIPT."""
        again: list[_Item] = []
        read = 0
        try:
            # One deadline for the batch (the pool's socket timeout), not a timeout
            # context per reply (redis-py's default: its cost per publish was measurable).
            async with asyncio.timeout(conn.socket_timeout or None):
                for item in pending:
                    try:
                        reply = await conn.read_response(timeout=math.inf)
                        read += 1
                    except NoScriptError:
                        read += 1
                        again.append(item)  # the script did not run
                        continue
                    except ResponseError as exc:  # an error reply: the connection is in step
                        read += 1
                        item.fail(publish_failed(exc, sent=True))
                        continue
                    item.resolve(reply)
        except BaseException as exc:
            # Answered NOSCRIPT: certainly not run. The unanswered ones are left to the
            # caller's handler (they may have run).
            why = exc if isinstance(exc, RedisError | OSError) else BrokerUnavailable(repr(exc))
            for item in again:
                item.fail(publish_failed(why, sent=False))
            pending[:] = pending[read:]
            raise
        if again:
            self.counters["noscript"] += 1
        return again


def _plain(call: PublishCall) -> Script:
    return publish_script()


def _loads(scripts: list[Script]) -> list[bytes]:
    """``SCRIPT LOAD`` of each distinct script of a batch."""
    texts = {script.sha: script.text for script in scripts}
    return [_packed("SCRIPT", "LOAD", text) for text in texts.values()]


def _packed(*args: Any) -> bytes:
    """One command in the Redis protocol."""
    packed: bytes = pack_command(args)
    return packed


def run_calls(
    redis: SyncRedis, calls: list[PublishCall], script: Callable[[PublishCall], Script] = _plain
) -> list[Any]:
    """Run ``calls`` as one pipeline on one connection of ``redis`` (redis-py's blocking
    client: :meth:`anywire.publisher.Publisher.emit_many`). Each result is the script's
    reply or the call's :class:`~anywire.errors.BrokerUnavailable` (not raised), with the
    guarantees of :class:`PublishBatcher`: in order, ``maybe_published`` exact, NOSCRIPT
    loaded and sent again."""
    out: list[Any] = [None] * len(calls)
    pool = redis.connection_pool
    try:
        conn = pool.get_connection()
    except (RedisError, OSError) as exc:
        return [publish_failed(exc, sent=False)] * len(calls)
    pending = deque(range(len(calls)))  # not answered yet (Redis may have run them)
    again: list[int] = []  # answered NOSCRIPT: did not run
    load = maybe = False
    try:
        for _ in range(3):
            if not pending:
                return out
            scripts = [script(calls[i]) for i in pending]
            commands = _loads(scripts) if load else []
            for i, one in zip(pending, scripts, strict=True):
                call = calls[i]
                commands.append(_packed("EVALSHA", one.sha, len(call.keys), *call.keys, *call.args))
            maybe = len(commands) > 1  # as in PublishBatcher._exchange
            conn.send_packed_command([b"".join(commands)], check_health=False)  # type: ignore[no-untyped-call]
            maybe = True
            if load:
                for _ in range(len(commands) - len(pending)):
                    conn.read_response()
            while pending:
                i = pending[0]
                try:
                    out[i] = conn.read_response()
                except NoScriptError:
                    again.append(i)
                except ResponseError as exc:
                    out[i] = publish_failed(exc, sent=True)
                pending.popleft()
            pending, again, load, maybe = deque(again), [], True, False
        for i in pending:
            out[i] = publish_failed(NoScriptError("the script keeps being flushed"), False)
    except (RedisError, OSError) as exc:
        conn.disconnect()  # type: ignore[no-untyped-call]
        for i in pending:
            out[i] = publish_failed(exc, sent=maybe)
        for i in again:
            out[i] = publish_failed(exc, sent=False)
    except BaseException:
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(conn)
    return out
