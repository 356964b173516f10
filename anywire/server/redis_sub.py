"""Reading Redis pub/sub for the broker: one connection, the channels it is told to hold.

:class:`Subscriber` is what the broker needs from a pub/sub reader; :class:`RedisSubscriber`
is the implementation for one (standalone) Redis: a single pub/sub connection read by one
task in a retry loop. Redis Cluster's sharded pub/sub implements the same protocol
elsewhere.

The reader keeps the set of channels it was asked to hold. :meth:`~Subscriber.subscribe`
returns once Redis has confirmed every channel (so anything published afterwards arrives),
or raises ``ConnectionError``; the channels stay wanted either way, and after a connection
loss the reader subscribes all of them again and, once Redis confirmed them, calls
``on_resubscribed`` with them: what was published meanwhile was lost on the wire and the
broker reads it from history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = ["RedisSubscriber", "Subscriber", "ignore_list", "ignore_message", "ignore_state"]

log = logging.getLogger("anywire.redis")


class Subscriber(Protocol):
    """Reads pub/sub for the broker. Channels are str; messages arrive as (channel: bytes,
    data: bytes)."""

    async def start(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_resubscribed: Callable[[list[str]], None],
        on_state: Callable[[str], None],
    ) -> None:
        """Begin reading (in the background): every message of a held channel goes to
        ``on_message``; ``on_resubscribed(channels)`` follows each reconnect once those
        channels are confirmed again; ``on_state`` gets ``ok`` / ``down``."""
        ...

    async def subscribe(self, channels: Iterable[str]) -> None:
        """Returns once Redis confirmed every channel (raises ConnectionError if it cannot)."""
        ...

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        """Stop holding ``channels`` (messages already on their way may still arrive)."""
        ...

    async def stop(self) -> None:
        """Stop reading and close the connection."""
        ...

    def channels(self) -> set[str]:
        """The channels held (wanted, confirmed or not yet)."""
        ...


class RedisSubscriber:
    """:class:`Subscriber` on one Redis: one pub/sub connection, one reading task.

    :param url: ``redis://host:port/db``.
    :param backoff_max: the longest pause between reconnection attempts (from 50 ms,
        doubling).
    :param patterns: glob patterns held besides the channels (``PSUBSCRIBE``; confirmed
        before the state is ``ok``). Standalone Redis only.
    :param clients: where each (re)connection comes from, one client per connect
        (:func:`anywire.redis_connect.subscriber_client`: Sentinel's current primary,
        a cluster's nodes in turn, TLS options); default: ``url``.
    :param confirm_timeout: seconds Redis has to confirm a ``SUBSCRIBE`` (and to let a
        connection be made). A connection that lets that pass is dead as far as the
        node can tell (after a failover, behind a stalled proxy: open, nothing comes
        back): it is replaced, and :meth:`subscribe` raises ``ConnectionError``.
    :param idle_ping: seconds of silence on the connection after which the reader sends
        ``PING``; nothing heard within ``confirm_timeout`` after it, and the connection
        is replaced as above. Without it a connection that went dead while its channels
        were quiet (a black hole, a NAT that forgot it; TCP keepalive takes hours) would
        be taken for a quiet one, and every event published afterwards would miss this
        node without a ``$lost``: the reconnection's resubscribe is what makes the
        broker fill the gap from history.
    """

    def __init__(
        self,
        url: str,
        *,
        backoff_max: float = 2.0,
        patterns: Iterable[str] = (),
        clients: Iterator[aioredis.Redis] | None = None,
        confirm_timeout: float = 5.0,
        idle_ping: float = 5.0,
    ) -> None:
        self.url = url
        self._clients = clients
        self.backoff_max = backoff_max
        self.confirm_timeout = confirm_timeout
        self.idle_ping = idle_ping
        self.patterns = list(patterns)
        self.reconnects = 0
        """Connections made after the first one (metrics)."""
        self._wanted: set[str] = set()
        self._confirmed: set[bytes] = set()  # on the current connection
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._pubsub: Any = None  # the connected PubSub, None while down
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._reading: asyncio.Future[None] | None = None  # the live connection's reads
        self._heard = 0  # messages read on any connection (the idle PING's evidence)
        self._reset_reason = ""
        self._closing = False
        self._wake = asyncio.Event()  # something to hold: connect
        self._on_message: Callable[[bytes, bytes], None] = ignore_message
        self._on_resubscribed: Callable[[list[str]], None] = ignore_list
        self._on_state: Callable[[str], None] = ignore_state

    def channels(self) -> set[str]:
        return set(self._wanted)

    def confirmed(self, channel: str) -> bool:
        """Whether ``channel`` is subscribed on the live connection (confirmed)."""
        return channel.encode() in self._confirmed

    async def start(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_resubscribed: Callable[[list[str]], None],
        on_state: Callable[[str], None],
    ) -> None:
        self._on_message = on_message
        self._on_resubscribed = on_resubscribed
        self._on_state = on_state
        self._closing = False
        # redis-py's own silent reconnect is off: every lost subscription is noticed
        # here, so the broker can fill what was published meanwhile.
        if self._clients is not None:
            self._client = next(self._clients)
        else:
            self._client = aioredis.from_url(
                self.url,
                socket_keepalive=True,
                retry=Retry(NoBackoff(), 0),
                socket_connect_timeout=2.0,
            )
        if self.patterns:
            self._wake.set()
        self._task = asyncio.create_task(self._run(), name="anywire-redis-reader")

    async def subscribe(self, channels: Iterable[str]) -> None:
        futures: list[asyncio.Future[None]] = []
        send: list[str] = []
        loop = asyncio.get_running_loop()
        for channel in channels:
            self._wanted.add(channel)
            key = channel.encode()
            if key in self._confirmed:
                continue
            fut: asyncio.Future[None] = loop.create_future()
            waiting = self._waiters.setdefault(key, [])
            if not any(not f.done() for f in waiting):
                send.append(channel)  # else a SUBSCRIBE of it is on its way already
            waiting.append(fut)
            futures.append(fut)
        self._wake.set()
        if not futures:
            return
        pubsub = self._pubsub
        if pubsub is None:
            # Still wanted: the reader subscribes it when it (re)connects. Its next
            # attempt confirms it (or fails it) within a connect timeout and a backoff.
            try:
                async with asyncio.timeout(self.backoff_max + 2.0):
                    await asyncio.gather(*futures)
            except TimeoutError:
                raise ConnectionError("Redis subscription down") from None
            return
        try:
            # Bounded: a connection that neither confirms nor fails (half dead after a
            # failover) would otherwise hold every wanter of these channels for good.
            async with asyncio.timeout(self.confirm_timeout):
                if send:
                    await pubsub.subscribe(*send)
                await asyncio.gather(*futures)
        except TimeoutError:
            reason = f"Redis confirmed no subscription within {self.confirm_timeout} s"
            self._fail_waiters(futures, reason)
            self._reset(pubsub, reason)
            raise ConnectionError(reason) from None
        except (RedisError, OSError) as exc:
            self._fail_waiters(futures, str(exc))
            raise ConnectionError(f"subscribe failed: {exc}") from exc

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        send: list[str] = []
        for channel in channels:
            if channel in self._wanted:
                self._wanted.discard(channel)
                self._confirmed.discard(channel.encode())
                send.append(channel)
        pubsub = self._pubsub
        if send and pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                # A lost connection takes the subscription with it: nothing to undo.
                await pubsub.unsubscribe(*send)

    async def stop(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(0.5):
                    await task
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(0.2):
                    await client.aclose()
        self._drop("subscriber stopped")

    # -- reading --------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.05
        first = True
        failing = False  # logged once per outage, not at every attempt
        while not self._closing:
            await self._wake.wait()
            if not self._wanted and not self.patterns:
                self._wake.clear()  # nothing to hold (yet): no connection
                continue
            assert self._client is not None
            pubsub = self._client.pubsub()
            try:
                # Bounded: a connection made to a server that never answers (a black
                # hole, a half-failed-over primary) is given up and tried again.
                async with asyncio.timeout(self.confirm_timeout):
                    initial, hold = await self._connect(pubsub)
                ready = asyncio.ensure_future(self._ready(pubsub, initial, hold, first))
                watch = asyncio.ensure_future(self._watch(pubsub))
                first = False
                failing = False
                delay = 0.05
                try:
                    await self._read_until_reset(pubsub)
                finally:
                    ready.cancel()
                    watch.cancel()
            except asyncio.CancelledError:
                self._drop("subscriber stopped")
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                if self._pubsub is not None or not failing:
                    log.warning("anywire: Redis subscription lost (%s); reconnecting", exc)
                failing = True
            except Exception:
                log.exception("anywire: Redis reader failed; restarting it")
            self._drop("Redis subscription lost")
            self._on_state("down")
            with contextlib.suppress(Exception):
                # (Bounded: closing a connection whose peer reads nothing can wait.)
                async with asyncio.timeout(self.confirm_timeout):
                    await pubsub.aclose()
            if self._clients is not None:
                # The next server to subscribe on (Sentinel's primary, asked again; a
                # cluster's next node).
                old, self._client = self._client, next(self._clients)
                with contextlib.suppress(Exception):
                    if old is not None:
                        async with asyncio.timeout(self.confirm_timeout):
                            await old.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _connect(self, pubsub: Any) -> tuple[list[asyncio.Future[None]], list[str]]:
        """Subscribe a fresh connection to everything held; returns the confirmations
        to wait for and the channels it was subscribed to first."""
        hold = sorted(self._wanted)
        initial = self._expect(hold) + self._expect(self.patterns)
        if self.patterns:
            await pubsub.psubscribe(*self.patterns)
        if hold:
            await pubsub.subscribe(*hold)
        self._pubsub = pubsub
        late = sorted(self._wanted.difference(hold))
        if late:  # wanted while this connection was being made
            initial += self._expect(late)
            await pubsub.subscribe(*late)
        return initial, hold

    def _expect(self, names: Iterable[str]) -> list[asyncio.Future[None]]:
        """One future per channel or pattern, settled when Redis confirms it."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for name in names:
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(name.encode(), []).append(fut)
            futures.append(fut)
        return futures

    async def _read_until_reset(self, pubsub: Any) -> None:
        """Read ``pubsub`` until it fails, or until :meth:`_reset` gives it up (raised
        as ``ConnectionError``: the reader reconnects as after any loss)."""
        reading = self._reading = asyncio.ensure_future(self._read(pubsub))
        try:
            await reading
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closing or (task is not None and task.cancelling()):
                raise  # stopped
            raise ConnectionError(self._reset_reason) from None
        finally:
            self._reading = None

    async def _read(self, pubsub: Any) -> None:
        # A blocking read returns a message already received without yielding
        # to the loop: the reader goes through everything buffered before the
        # writers run, so a burst of publishes reaches each connection as one
        # batched write, and it yields (the writers run) only when the socket
        # has nothing more. Polling with get_message(timeout=0.0) instead cost
        # a timeout context per message and an exception per burst: about a
        # third of the reader's CPU, which every worker pays for every event
        # (bench/bus_receive.py, docs/scaling.md "Many cores").
        on_message = self._on_message
        while not self._closing:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            self._heard += 1
            kind = message["type"]
            if kind == "message" or kind == "pmessage":
                on_message(message["channel"], message["data"])
            elif kind == "subscribe" or kind == "psubscribe":
                self._confirm(message["channel"])

    async def _watch(self, pubsub: Any) -> None:
        """While ``pubsub`` is the live connection: after ``idle_ping`` seconds with
        nothing read, send ``PING``; if nothing (its ``pong`` included) is read within
        ``confirm_timeout`` after it, give the connection up (:meth:`_reset`)."""
        while True:
            heard = self._heard
            await asyncio.sleep(self.idle_ping)
            if self._heard != heard:
                continue  # messages came: alive
            reason = f"Redis answered no PING within {self.confirm_timeout} s"
            try:
                async with asyncio.timeout(self.confirm_timeout):
                    await pubsub.ping()
            except (RedisError, OSError, TimeoutError) as exc:
                reason = f"PING failed on the pub/sub connection ({exc or 'timeout'})"
            else:
                await asyncio.sleep(self.confirm_timeout)
                # (One more turn of the loop: after a stall of this process the pong
                # may be read in the very iteration this wakes in.)
                await asyncio.sleep(0)
                if self._heard != heard:
                    continue
            self._reset(pubsub, reason)
            return

    def _reset(self, pubsub: Any, reason: str) -> None:
        """Give up ``pubsub`` if it is still the live connection: Redis let a
        subscription go unconfirmed on it. Its reads end, and the reader reconnects
        (and, once confirmed, reports every channel resubscribed: the broker fills
        what was missed from history)."""
        reading = self._reading
        if pubsub is not self._pubsub or reading is None or reading.done():
            return
        log.warning("anywire: %s; replacing the pub/sub connection", reason)
        self._reset_reason = reason
        reading.cancel()

    async def _ready(
        self, pubsub: Any, initial: list[asyncio.Future[None]], hold: list[str], first: bool
    ) -> None:
        """Once Redis confirmed what a fresh connection subscribed: ``ok``, and after a
        reconnect the broker is told which channels may have missed messages. A
        connection that does not confirm within ``confirm_timeout`` is replaced."""
        with contextlib.suppress(ConnectionError):
            try:
                async with asyncio.timeout(self.confirm_timeout):
                    await asyncio.gather(*initial)
            except TimeoutError:
                self._reset(pubsub, "Redis confirmed no subscription of a new connection")
                return
            self._on_state("ok")
            if not first:
                self.reconnects += 1
                self._on_resubscribed(hold)

    def _confirm(self, channel: bytes) -> None:
        if channel.decode() in self._wanted or channel.decode() in self.patterns:
            # (A confirmation of a channel unsubscribed since is not a subscription.)
            self._confirmed.add(channel)
        for fut in self._waiters.pop(channel, ()):
            if not fut.done():
                fut.set_result(None)

    def _drop(self, reason: str) -> None:
        """The connection is gone: nothing is confirmed, every waiter fails."""
        self._pubsub = None
        self._confirmed.clear()
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            self._fail_waiters(futures, reason)

    @staticmethod
    def _fail_waiters(futures: list[asyncio.Future[None]], reason: str) -> None:
        for fut in futures:
            if not fut.done():
                fut.set_exception(ConnectionError(reason))
                fut.exception()  # seen here: a waiter that gave up is not logged


# The callbacks of a subscriber (or of Routes) before start() gives it the real ones;
# shared by every Subscriber implementation.
def ignore_message(channel: bytes, data: bytes) -> None:
    """Drop a message (before start())."""


def ignore_list(channels: list[str]) -> None:
    """Ignore a list of channels or streams (before start())."""


def ignore_state(state: str) -> None:
    """Ignore a state change (before start())."""
