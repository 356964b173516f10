"""The embedded in-memory broker: one node, no setup."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from ..core.streams import StreamLog
from .broker import Envelope, stream_of

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """Delivers in-process, keeping ``history`` envelopes per room and user stream.

    Stream logs are created on first publish; at most ``max_streams`` are kept (the oldest
    is forgotten first, and its clients then get ``recovered: false``).
    """

    def __init__(self, history: int = 1000, max_streams: int = 100_000) -> None:
        self._history = history
        self._max_streams = max_streams
        self._logs: dict[str, StreamLog] = {}
        self._deliver: Callable[[Envelope], None] | None = None

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        self._deliver = deliver

    async def publish(self, envelope: Envelope) -> None:
        stream = stream_of(envelope)
        if stream is not None:
            log = self._logs.get(stream)
            if log is None:
                if len(self._logs) >= self._max_streams:
                    # Bounded: forget the oldest stream (its clients get recovered: false).
                    self._logs.pop(next(iter(self._logs)))
                log = self._logs[stream] = StreamLog(stream, secrets.token_hex(4), self._history)
            envelope.pos = (stream, log.epoch, log.offset + 1)
            log.append(envelope)
        if self._deliver is not None:
            self._deliver(envelope)

    async def history(self, stream: str, epoch: str, offset: int) -> list[Envelope] | None:
        log = self._logs.get(stream)
        if log is None:
            return None
        items = log.since(epoch, offset)
        return None if items is None else list(items)

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
