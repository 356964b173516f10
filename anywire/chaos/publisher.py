"""The publisher of a chaos run: an anywire node of its own (no clients), on the run's Redis.

It emits room, user and session events at a fixed rate with the public API
(``Anywire.emit(..., id=key)``), records the stream position each one got, and retries a
publish that failed with the same ``id`` (bounded), so a publish that Redis ran before the
failure is not published twice. It also calls clients (``Anywire.call``) and records how
each call ended.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..core.frames import StreamPos
from ..server.app import Anywire
from ..server.auth import JWTAuth
from ..server.errors import BrokerUnavailable
from .app import AUDIENCE, SECRET, settings_from_env

__all__ = ["Publisher"]


@dataclass
class Publisher:
    """Publishes to ``rooms``, to ``users`` and to the sessions in ``sids``."""

    redis_url: str
    rooms: list[str]
    users: list[str]
    sids: list[str]
    rate: float = 100.0  # events per second
    call_rate: float = 2.0  # server calls per second
    call_timeout: float = 20.0
    retry_for: float = 60.0  # how long a failed publish is retried (same id)
    seed: int = 1
    published: dict[str, StreamPos] = field(default_factory=dict)
    uncertain: set[str] = field(default_factory=set)  # never confirmed (gave up)
    retried: Counter[str] = field(default_factory=Counter)  # why publishes were retried
    calls: dict[str, str] = field(default_factory=dict)  # key -> outcome
    errors: Counter[str] = field(default_factory=Counter)  # why publishes failed
    _aw: Anywire | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> None:
        aw = Anywire(
            auth=JWTAuth(SECRET, audience=AUDIENCE),
            settings=settings_from_env(),
            secret=SECRET.encode(),
        )
        aw.use_redis(self.redis_url)
        await aw.start()
        self._aw = aw

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.retry_for + 5)
        if self._aw is not None:
            await self._aw.stop(grace=0.5)

    async def run(self, duration: float) -> None:
        """Publish for ``duration`` seconds (each publish its own task, so a stuck one
        does not slow the rate), then wait (bounded) for every publish to settle."""
        rng = random.Random(self.seed)
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        next_call = start
        while loop.time() - start < duration:
            n += 1
            key = f"p{n}"
            pick = rng.random()
            if pick < 0.7:
                target: dict[str, str] = {"room": rng.choice(self.rooms)}
                event = "r"
            elif pick < 0.85:
                target, event = {"user": rng.choice(self.users)}, "u"
            else:
                target, event = {"to": rng.choice(self.sids)}, "s"
            self._spawn(self._publish(key, event, target))
            now = loop.time()
            if self.call_rate > 0 and now >= next_call:
                next_call = now + 1.0 / self.call_rate
                self._spawn(self._call(f"k{n}", rng.choice(self.sids)))
            await asyncio.sleep(max(0.0, start + n / self.rate - loop.time()))
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.retry_for + self.call_timeout + 5)

    async def _publish(self, key: str, event: str, target: dict[str, str]) -> None:
        assert self._aw is not None
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                self.published[key] = await self._aw.emit(event, {"k": key}, id=key, **target)
                return
            except BrokerUnavailable as exc:
                self.retried["maybe" if exc.maybe_published else "not"] += 1
                self.errors[str(exc)[:120]] += 1
                if time.monotonic() > deadline:
                    self.uncertain.add(key)
                    return
                await asyncio.sleep(0.2)

    async def _call(self, key: str, sid: str) -> None:
        assert self._aw is not None
        try:
            answer = await self._aw.call(sid, "call", {"k": key}, timeout=self.call_timeout)
            self.calls[key] = "ok" if answer == key else f"wrong answer {answer!r}"
        except Exception as exc:
            self.calls[key] = type(exc).__name__

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
