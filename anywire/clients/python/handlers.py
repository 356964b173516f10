"""The client's event handlers: registration and dispatch of server events.

A handler is ``fn(data)`` or ``fn(data, info)`` (decided once, at registration, from its
signature), sync or async. If the server asked for an ack, its return value is the
answer and an exception an error answer (``handler_error``); an event nobody handles is
answered ``no_handler``. Async handlers run as tasks, started in arrival order, so a slow
one never stalls the connection.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...core.frames import Event, StreamPos

__all__ = ["EventInfo", "Handlers", "logged", "takes_two"]

log = logging.getLogger("anywire.client")

Reply = Callable[[int, bool, Any, str, str], None]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What a two-argument handler learns besides the data (the JavaScript client's
    ``info``): the event name, the room it was broadcast to, its stream position
    ``(stream, epoch, offset)`` and the ack id the server asked for."""

    event: str
    room: str | None
    offset: StreamPos | None
    id: int | None


class Handlers:
    """Handlers by event name, and the dispatch of one event to its handler."""

    def __init__(self, reply: Reply, spawn: Callable[[Awaitable[Any]], None]) -> None:
        self._reply = reply
        self._spawn = spawn
        self._handlers: dict[str, tuple[Callable[..., Any], bool]] = {}

    def add(self, event: str, fn: Callable[..., Any]) -> None:
        """Register ``fn`` for ``event`` (replacing an earlier one)."""
        self._handlers[event] = (fn, takes_two(fn))

    def dispatch(self, event: Event) -> None:
        """Run the handler of ``event``; answer it when the server asked for an ack."""
        entry = self._handlers.get(event.e)
        if entry is None:
            if event.id is not None:
                self._reply(event.id, False, None, "no_handler", f"no handler for {event.e!r}")
            return
        fn, with_info = entry
        try:
            if with_info:
                result = fn(event.d, EventInfo(event.e, event.r, event.o, event.id))
            else:
                result = fn(event.d)
        except Exception as exc:
            self._failed(event, exc)
            return
        if inspect.isawaitable(result):
            self._spawn(self._finish(event, result))
        elif event.id is not None:
            self._reply(event.id, True, result, "", "")

    async def _finish(self, event: Event, pending: Awaitable[Any]) -> None:
        try:
            result = await pending
        except Exception as exc:
            self._failed(event, exc)
            return
        if event.id is not None:
            self._reply(event.id, True, result, "", "")

    def _failed(self, event: Event, exc: Exception) -> None:
        if event.id is not None:
            self._reply(event.id, False, None, "handler_error", str(exc) or type(exc).__name__)
        else:
            log.error("anywire handler for %r failed", event.e, exc_info=exc)


def takes_two(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a second positional argument (handlers: ``info``; state
    hooks: the client's ``stats``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


async def logged(aw: Awaitable[Any], fn: Callable[..., Any]) -> None:
    """Await an async hook's result; its failure is logged, never raised."""
    try:
        await aw
    except Exception:
        log.exception("anywire hook %r failed", fn)
