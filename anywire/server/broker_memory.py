"""The embedded in-memory broker: one node, no setup."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from ..core.frames import StreamPos
from ..core.streams import StreamLog, StreamRead
from .broker import Envelope, stream_of

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Delivers in-process, keeping ``history`` envelopes per stream.

    Stream logs are created on first use; at most ``max_streams`` are kept (the one used
    least recently is forgotten first, and its clients then get ``$lost`` for it).
    Idempotency keys (``emit(..., id=...)``) are remembered per stream for
    ``idempotency_window`` seconds, at most ``max_keys`` of them.
    """

    def __init__(
        self,
        history: int = 1000,
        max_streams: int = 100_000,
        idempotency_window: float = 300.0,
        max_keys: int = 100_000,
    ) -> None:
        self._history = history
        self._max_streams = max_streams
        self._window = idempotency_window
        self._max_keys = max_keys
        self._logs: OrderedDict[str, StreamLog] = OrderedDict()
        self._keys: OrderedDict[tuple[str, str], tuple[StreamPos, float]] = OrderedDict()
        self._deliver: Callable[[Envelope], None] | None = None
        self.counters = {"published": 0, "received": 0}
        """Publishes, and envelopes delivered back (in-process: the same, once each)."""

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        self._deliver = deliver

    async def publish(self, envelope: Envelope) -> StreamPos:
        stream = stream_of(envelope)
        if envelope.key is not None:
            earlier = self._published(stream, envelope.key)
            if earlier is not None:
                envelope.pos = earlier
                return earlier
        log = self._log(stream)
        pos = envelope.pos = (stream, log.epoch, log.offset + 1)
        log.append(envelope)
        if envelope.key is not None:
            self._keys[(stream, envelope.key)] = (pos, time.monotonic() + self._window)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        self.counters["published"] += 1
        if self._deliver is not None:
            self.counters["received"] += 1
            self._deliver(envelope)
        return pos

    def _published(self, stream: str, key: str) -> StreamPos | None:
        """The position an earlier publish with ``key`` got, if within the window."""
        now = time.monotonic()
        while self._keys:  # expire from the oldest (insertion order is expiry order)
            first = next(iter(self._keys.values()))
            if first[1] > now:
                break
            self._keys.popitem(last=False)
        found = self._keys.get((stream, key))
        return None if found is None else found[0]

    def _log(self, stream: str) -> StreamLog:
        log = self._logs.get(stream)
        if log is None:
            while len(self._logs) >= self._max_streams:
                self._logs.popitem(last=False)
            log = self._logs[stream] = StreamLog(stream, secrets.token_hex(4), self._history)
        else:
            self._logs.move_to_end(stream)
        return log

    async def read(self, stream: str, epoch: str, after: int) -> StreamRead:
        return self._log(stream).read(epoch, after)

    async def entry(self, stream: str, epoch: str, offset: int) -> Envelope | None:
        log = self._logs.get(stream)
        if log is None or log.epoch != epoch:
            return None
        found = log.entry(offset)
        return found if isinstance(found, Envelope) else None

    async def want(self, stream: str, consumer: str) -> None:
        pass  # one node: every publish is delivered here

    def unwant(self, stream: str, consumer: str) -> None:
        pass

    def forget(self, consumer: str) -> None:
        pass

    def drop(self, stream: str) -> None:
        self._logs.pop(stream, None)

    def position(self, stream: str) -> tuple[str, int] | None:
        # Delivery happens inside publish(), so delivered == published.
        log = self._logs.get(stream)
        return None if log is None else (log.epoch, log.offset)

    def seed(self, stream: str, epoch: str, offset: int) -> None:
        pass

    async def stop(self) -> None:
        self._deliver = None

    def state(self) -> str:
        return "ok"

    def stream_count(self) -> int:
        """Streams with history (for metrics)."""
        return len(self._logs)
