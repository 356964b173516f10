"""Catching a session up on a stream: the I/O around :func:`~anywire.core.streams.plan_catch_up`.

A session starts consuming a stream when it joins a room (client or server side) and when
a fresh session starts (its user's, its own and its namespace's streams). The host first
*holds* the stream in the session (:meth:`~anywire.core.session.ServerSession.hold`: live
events of it are kept aside), then reads history after the position the client holds,
replays it (or announces what history no longer holds), and releases the held live
events; the session's per-stream dedupe drops the overlap. So the order is always history
first, live after, every offset once, however long the read takes: there is no window
between reading history and subscribing for an event to slip through.

With interest routing (a Redis broker receives only the streams its sessions consume)
the read also waits for the node's subscription: :meth:`~.broker.Broker.want` returns
once Redis confirmed it, and only then is history read. So an event published before the
subscription is in the read, and one published after arrives live (held, then deduped
against the read): subscribe, confirmed, read, seed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..core.codec import Outgoing
from ..core.session import ServerSession, SessionState
from ..core.streams import CatchUp, Lost, plan_catch_up
from .broker import Broker

__all__ = ["ATTEMPT_FLOOR", "begin", "catch_up", "held_catch_up", "patient_catch_up"]

log = logging.getLogger("anywire")


async def catch_up(
    broker: Broker, stream: str, since: tuple[str, int] | None, consumer: str
) -> CatchUp:
    """Plan the catch-up of session ``consumer`` on ``stream`` from ``since`` (None: from
    now on). Call it only while the session holds the stream. Raises ``ConnectionError``
    when history (or the stream's subscription) is unreachable.

    Everything this node delivers after the hold began is held, and was published before
    the read ran, so the read's head is a safe end for the replay: anything later
    arrives live, and anything both read and held is deduplicated.
    """
    epoch, after = since if since is not None else ("", 0)
    # Subscribed (confirmed) before the read: nothing published in between is missed.
    await broker.want(stream, consumer)
    read = await broker.read(stream, epoch, after)
    if broker.position(stream) is None:
        # This node has not delivered the stream yet (the session is its first consumer
        # here): later offsets reach it live; earlier ones still in flight are history.
        broker.seed(stream, read.epoch, read.head)
    return plan_catch_up(stream, since, read, read.head)


ATTEMPT_FLOOR = 6.0
"""The least time one catch-up attempt gets, however little patience is left (a fresh
session's catch-up has none: it reads once). One attempt's own I/O is bounded below this
in the normal case (a read: the pool's 2 s wait, then the 5 s socket timeout of a reply
that started; a subscription: the subscriber's confirmation timeout), so this bound is
the backstop that makes an attempt end whatever hangs under it."""


async def patient_catch_up(
    broker: Broker, stream: str, since: tuple[str, int] | None, patience: float, consumer: str
) -> CatchUp | None:
    """:func:`catch_up`, retried while history is unreachable (a paused or restarting
    Redis) for up to ``patience`` seconds: a catch-up waits rather than announce a loss
    that a moment later would not be one. None if history stayed unreachable.

    Always returns within ``max(patience, ATTEMPT_FLOOR)`` seconds and a retry's pause:
    each attempt is bounded by what is left of the patience (at least
    :data:`ATTEMPT_FLOOR`), and an attempt that hits its bound counts as history
    unreachable. A session holds the stream meanwhile, so an attempt that never ended
    (a subscription Redis never confirmed, after a failover) held its live events for
    good (docs/reliability/sentinel-duplicates.md, "The stall")."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.05
    while True:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), ATTEMPT_FLOOR)):
                return await catch_up(broker, stream, since, consumer)
        except TimeoutError:
            log.warning("anywire: catch-up of %s timed out; history counted unreachable", stream)
        except ConnectionError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py turned our cancellation into a connection error (it closes
                # the connection it was reading): honour the cancel, do not retry.
                raise asyncio.CancelledError from None
        if loop.time() + delay > deadline:
            return None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def held_catch_up(
    broker: Broker,
    sess: ServerSession,
    stream: str,
    since: tuple[str, int] | None,
    patience: float,
) -> tuple[tuple[str, int] | None, list[Lost], list[Any], list[Outgoing]] | None:
    """Catch ``sess``, which holds ``stream``, up from ``since`` (:func:`patient_catch_up`)
    and end the hold. Returns :func:`begin`'s start, losses and events, then the live
    events held meanwhile: to be sent in that order. None if the session closed
    meanwhile."""
    try:
        plan = await patient_catch_up(broker, stream, since, patience, sess.sid)
    finally:
        held = sess.release(stream)
    if sess.state is SessionState.CLOSED:
        return None
    start, lost, items = begin(sess, stream, since, plan, broker.position(stream))
    return start, lost, items, held


def begin(
    sess: ServerSession,
    stream: str,
    since: tuple[str, int] | None,
    plan: CatchUp | None,
    here: tuple[str, int] | None,
) -> tuple[tuple[str, int] | None, list[Lost], list[Any]]:
    """Start ``sess`` on ``stream``: returns the position the client stands at before
    anything of the catch-up (None if unknown), the losses to announce and the events to
    replay, both relative to what the session already has (a repeated catch-up replays
    nothing twice and announces nothing twice).

    ``plan`` None means history was unreachable: the session starts with what this node
    delivers live from ``here`` on (its position in the stream, None if it has none), and
    a position the client holds is announced lost up to there (count unknown when the
    epochs differ).
    """
    items: list[Any] = []
    lost: list[Lost] = []
    start: tuple[str, int] | None
    if plan is not None:
        start, lost, items = plan.start, plan.lost, plan.items
    elif since is None:
        start = here
    else:
        start = since
        if here is None or here[0] != since[0]:
            lost = [Lost(stream, since[0], since[1] + 1, None)]
        elif here[1] > since[1]:
            lost = [Lost(stream, since[0], since[1] + 1, here[1])]
    reported = None if start is None else sess.start_stream(stream, *start)
    announce = [c for c in (sess.clip_lost(x) for x in lost) if c is not None]
    return reported, announce, items
