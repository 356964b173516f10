"""Interest-based routing for the Redis broker: subscribe to the streams this node hosts.

Each stream's events are published on a channel of their own
(:func:`~anywire.redis_wire.stream_channel`). :class:`Routes` holds the node's
:class:`~anywire.core.interest.Interest` table (which local sessions consume which
streams) and keeps the :class:`~anywire.server.redis_sub.Subscriber`'s channels in step
with it:

* :meth:`Routes.want` is awaited before a session's catch-up reads a stream's history:
  it returns once Redis confirmed the stream's subscription, so everything published
  afterwards arrives live and everything before is in the read (the session holds live
  events of the stream until the read is replayed, and the gap tracker and the session's
  dedupe drop what both carry: exactly once);
* :meth:`Routes.unwant` / :meth:`Routes.forget` when a session leaves a room or ends; the
  stream lingers (``linger`` seconds) before it is unsubscribed, so churn costs nothing;
* one task applies the changes: every want of one event-loop turn goes out as one
  ``SUBSCRIBE``, every expired linger of one turn as one ``UNSUBSCRIBE``, in order.

A node therefore holds at most (streams its sessions consume) + (streams left within the
last ``linger``) subscriptions, plus its own request channel and the node bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable

from ..core.interest import Interest
from .redis_sub import Subscriber, ignore_list

__all__ = ["Routes"]

log = logging.getLogger("anywire.redis")


class Routes:
    """The subscriptions of one node, following its local consumers.

    :param subscriber: the pub/sub reader.
    :param channel_of: the channel of a stream.
    :param linger: seconds a stream stays subscribed after its last consumer left.
    :param covered: streams some standing subscription (a pattern) already receives:
        never subscribed one by one.
    """

    def __init__(
        self,
        subscriber: Subscriber,
        channel_of: Callable[[str], str],
        linger: float = 5.0,
        covered: Callable[[str], bool] | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.channel_of = channel_of
        self.interest = Interest(linger)
        self.covered = covered
        self.counters = {"subscribes": 0, "unsubscribes": 0, "subscribed": 0}
        """SUBSCRIBE / UNSUBSCRIBE commands sent, channels subscribed through them."""
        self.active: set[bytes] = set()
        """Channels (bytes, as messages name them) whose messages this node wants."""
        self._streams: dict[str, str] = {}  # channel -> stream, for every wanted stream
        self._ready: set[str] = set()  # streams confirmed on the live connection
        self._pending: dict[str, asyncio.Future[None]] = {}  # stream -> its wanters
        self._up = False
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.on_unsubscribed: Callable[[list[str]], None] = ignore_list
        """Called with the streams unsubscribed (the broker forgets their gap state)."""

    async def start(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_resubscribed: Callable[[list[str]], None],
        on_state: Callable[[str], None],
    ) -> None:
        """Start the subscriber; ``on_resubscribed`` gets the *streams* to probe after a
        reconnect."""

        def resubscribed(channels: list[str]) -> None:
            streams = [s for s in (self._streams.get(c) for c in channels) if s is not None]
            self._ready.update(s for s in streams if s in self.interest)
            # A stream wanted while the connection was down is confirmed now, by the
            # reconnection: its wanters go on. (_apply skips streams that are ready, so
            # a wanter left pending here waited for good: the stall of a rejoin during
            # a Sentinel failover, docs/reliability/sentinel-duplicates.md.)
            self._settle_ready()
            on_resubscribed(streams)

        def state(value: str) -> None:
            self._up = value == "ok"
            if not self._up:
                self._ready.clear()
            on_state(value)

        await self.subscriber.start(on_message, resubscribed, state)
        self._task = asyncio.create_task(self._run(), name="anywire-redis-routes")

    async def stop(self) -> None:
        """Stop applying changes and stop the subscriber (both cancelled before anything
        is awaited: a caller's timeout cannot leave the reader running)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        for stream in list(self._pending):
            self._release(stream, "broker stopped")
        await self.subscriber.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(0.5):
                    await task

    async def hold(self, channels: list[str]) -> None:
        """Subscribe channels that are not streams (node channels), for good."""
        self.active.update(c.encode() for c in channels)
        await self.subscriber.subscribe(channels)

    # -- interest ---------------------------------------------------------------------------
    async def want(self, stream: str, consumer: Hashable) -> None:
        """``consumer`` starts consuming ``stream``: returns once the stream's channel is
        confirmed subscribed (at once if it is already). Raises ``ConnectionError`` while
        Redis cannot confirm it; the interest stays, and the reconnection subscribes it."""
        self.interest.add(stream, consumer)
        channel = self.channel_of(stream)
        if channel not in self._streams:
            self._streams[channel] = stream
            self.active.add(channel.encode())
        if self.covered is not None and self.covered(stream):
            if not self._up:
                raise ConnectionError("Redis subscription down")
            return
        if stream in self._ready:
            return
        fut = self._pending.get(stream)
        if fut is None or fut.done():
            fut = self._pending[stream] = asyncio.get_running_loop().create_future()
        self._dirty.set()
        await asyncio.shield(fut)

    def unwant(self, stream: str, consumer: Hashable) -> None:
        """``consumer`` stopped consuming ``stream`` (idempotent)."""
        if self.interest.remove(stream, consumer, self._now()):
            self._gone([stream])
        self._dirty.set()

    def forget(self, consumer: Hashable) -> None:
        """``consumer`` ended: it consumes nothing any more."""
        self._gone(self.interest.forget(consumer, self._now()))
        self._dirty.set()

    def _gone(self, streams: list[str]) -> None:
        """Streams dropped before they were ever subscribed."""
        for stream in streams:
            channel = self.channel_of(stream)
            self._streams.pop(channel, None)
            self.active.discard(channel.encode())
            self._release(stream, "no longer wanted")

    def _settle_ready(self) -> None:
        """Wanters of streams confirmed meanwhile (by a reconnection) go on; those of
        streams nobody consumes any more are told so (their future would stay here)."""
        for stream in [s for s in self._pending if s in self._ready or s not in self.interest]:
            self._release(stream, None if stream in self._ready else "no longer wanted")

    def _release(self, stream: str, error: str | None = None) -> None:
        """Settle the wanters of ``stream`` and forget them: they go on (``error``
        None) or get ``ConnectionError(error)``."""
        fut = self._pending.pop(stream, None)
        if fut is None or fut.done():
            return
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(ConnectionError(error))
            fut.exception()  # retrieved: no warning when every wanter has gone

    def subscribed(self) -> int:
        """Stream channels held (consumed or lingering)."""
        return len(self.interest)

    # -- applying changes -------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self.interest.next_due()
            try:
                if due is None:
                    await self._dirty.wait()
                else:
                    async with asyncio.timeout(max(0.0, due - loop.time())):
                        await self._dirty.wait()
            except TimeoutError:
                pass
            self._dirty.clear()
            await asyncio.sleep(0)  # the other wants of this turn join the batch
            try:
                await self._apply(loop.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("anywire: applying subscription changes failed")

    async def _apply(self, now: float) -> None:
        add, drop = self.interest.take(now)
        if drop:
            channels = [self.channel_of(s) for s in drop]
            for stream, channel in zip(drop, channels, strict=True):
                self._ready.discard(stream)
                self._streams.pop(channel, None)
                self.active.discard(channel.encode())
            self.on_unsubscribed(drop)
            uncovered = [c for s, c in zip(drop, channels, strict=True) if not self._is_covered(s)]
            if uncovered:
                self.counters["unsubscribes"] += 1
                await self.subscriber.unsubscribe(uncovered)
        self._settle_ready()
        # Besides the new streams: wanters whose earlier attempt failed and asked again.
        wanted = set(add)
        wanted.update(s for s in self._pending if s in self.interest and s not in self._ready)
        streams = [s for s in wanted if not self._is_covered(s)]
        if not streams:
            return
        try:
            self.counters["subscribes"] += 1
            self.counters["subscribed"] += len(streams)
            await self.subscriber.subscribe([self.channel_of(s) for s in streams])
        except Exception as exc:
            # Every wanter hears of it (ConnectionError: it retries within its patience):
            # a future left pending here would hold a session's catch-up for good.
            if not isinstance(exc, ConnectionError):
                log.exception("anywire: subscribing %d streams failed", len(streams))
            for stream in streams:
                self._release(stream, str(exc))
            return
        for stream in streams:
            if stream in self.interest:
                self._ready.add(stream)
            self._release(stream)

    def _is_covered(self, stream: str) -> bool:
        return self.covered is not None and self.covered(stream)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()
