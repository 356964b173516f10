"""Transport racing for the Python client (protocol section 14, item 16; Happy-Eyeballs style).

A transport a proxy black-holes (nothing after the WebSocket 101, an event stream held
back by a buffering proxy) only shows by timing out. Rather than wait the whole connect
timeout, :func:`race` starts the next offered transport when the preferred one has not
delivered its hello within ``race_after`` seconds, both running in parallel; the first
hello wins and the others are stopped at once.

A ticket is single use and names one session (protocol section 11.2), so each extra
contender negotiates again for its own ticket; a fresh session is cheap to refuse and
nothing on the server changes. A contender that delivered a hello but lost says goodbye
(``close`` 4500) so the server ends its session at once instead of keeping it for the
resume window. A contender stopped before its hello did not fail: only attempts that
really failed are reported, and the caller remembers them (:mod:`.rounds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ...core.closecodes import CloseCode
from ...core.frames import Close, Hello
from .transports import ClientTransport
from .wire import Negotiated, Offer

__all__ = ["Attempt", "Won", "goodbye", "race"]

log = logging.getLogger("anywire.client")

Won = tuple[Negotiated, ClientTransport, Hello]
Attempt = Callable[[Negotiated, Offer], Awaitable[Won]]

# How long a loser may take to reach its hello, and to write its goodbye.
_GOODBYE = 0.5


async def race(
    neg: Negotiated,
    offers: list[Offer],
    after: float,
    attempt: Attempt,
    renegotiate: Callable[[], Awaitable[Negotiated]],
    background: Callable[[Coroutine[Any, Any, None]], None],
) -> tuple[Won | None, list[tuple[str, BaseException]], list[str]]:
    """Open ``offers[0]`` with ``neg``'s ticket; each time ``after`` seconds pass with no
    hello, negotiate again and start the next offer too.

    Returns at once the winner (None when every contender failed), the attempts that
    failed, in the order they failed, and the contenders that lost without failing. The
    losers are wound down through ``background`` (:func:`_wind_down`). ``attempt`` opens
    one offer (bounded by the connect timeout) and closes its transport itself when it
    fails or is cancelled.
    """
    pending = [o.name for o in offers[1:]]
    running: dict[asyncio.Task[Won], str] = {}
    failed: list[tuple[str, BaseException]] = []
    won: list[Won] = []

    def launch(n: Negotiated, offer: Offer) -> None:
        task = asyncio.ensure_future(attempt(n, offer))
        running[task] = offer.name

    def settle(done: set[asyncio.Task[Won]]) -> None:
        for task in done:
            name = running.pop(task)
            exc = task.exception()
            if exc is None:
                won.append(task.result())
            else:
                failed.append((name, exc))

    launch(neg, offers[0])
    try:
        while running and not won:
            wait = after if pending else None
            done, _ = await asyncio.wait(running, timeout=wait, return_when="FIRST_COMPLETED")
            settle(done)
            if not done and pending:
                # No hello in time: start the next contender, with its own ticket. Even
                # if a hello comes while negotiating: an unused ticket would hold a
                # session slot until it expires, so the spare is wound down like a loser.
                try:
                    extra = await renegotiate()
                except Exception as exc:  # e.g. an admission cap: the others run on
                    log.info("anywire: no ticket to race %s: %r", pending[0], exc)
                    pending.clear()
                    continue
                name = pending.pop(0)
                offer = next((o for o in extra.transports if o.name == name), None)
                if offer is not None:
                    launch(extra, offer)
                settle({t for t in running if t.done()})
    except BaseException:
        # Cancelled (the client closed): stop everything now.
        for task in running:
            task.cancel()  # each attempt closes its own transport when cancelled
        results = await asyncio.gather(*running, return_exceptions=True)
        for result in [*won, *(r for r in results if isinstance(r, tuple))]:
            await goodbye(result[1])
        raise
    if not won:
        return None, failed, []  # everything started failed: the caller falls back
    lost = [*running.values(), *(t.name for _, t, _ in won[1:])]
    if lost:
        background(_wind_down(list(running), [t for _, t, _ in won[1:]]))
    return won[0], failed, lost


async def _wind_down(running: list[asyncio.Task[Won]], losers: list[ClientTransport]) -> None:
    """End the losers' sessions so the server does not keep them.

    A contender still opening gets a moment to reach its hello (redeem its ticket, so no
    session slot stays held until the ticket expires), then says goodbye like any loser
    with a hello; one still silent then is stopped and says goodbye too (the attempt
    does, when cancelled): behind a proxy that holds the hello back, the server has the
    session already."""
    try:
        if running:
            await asyncio.wait(running, timeout=_GOODBYE)
        for task in running:
            if task.done() and not task.cancelled() and task.exception() is None:
                losers.append(task.result()[1])
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for transport in losers:
            await goodbye(transport)


async def goodbye(transport: ClientTransport) -> None:
    """End a losing contender's session at once: ``close`` 4500, then hang up."""
    transport.send([Close(CloseCode.NORMAL, "lost the transport race")])
    with contextlib.suppress(Exception):
        await transport.flush(_GOODBYE)
    await transport.close()
