"""Negotiate's admission control: the per-IP negotiate rate and the session caps
(:mod:`anywire.core.admission` counts; this module reads the request and answers).

A refusal is the JSON error of every endpoint plus ``retry_after`` (seconds) in the body
and a ``Retry-After`` header (exposed to cross-origin callers: browsers hide it
otherwise); both clients wait at least that long before negotiating again.

The client's address is ``scope["client"]``: the socket peer, or the address a trusted
proxy forwarded (uvicorn's ``--forwarded-allow-ips`` / ``FORWARDED_ALLOW_IPS``, by
default 127.0.0.1 and ::1 only). Behind any other proxy every client shares the proxy's
address: trust it there, or raise ``max_sessions_per_ip`` and ``negotiate_rate``.

With several nodes (Redis) every count is per node: the node that answers a negotiate
checks and holds the slot; a node that redeems another node's ticket checks its own node
and user caps when the session starts (:meth:`Gate.opened`) and counts the session.
"""

from __future__ import annotations

import asyncio
import json
import logging

from ..core.admission import Admission, Refusal, ip_key
from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError
from ..core.settings import Settings
from ..transports.base import Scope, Send
from .overload import LoopLag

__all__ = ["Busy", "Gate", "client_ip"]

log = logging.getLogger("anywire")

_PAUSE = 1.0  # seconds a negotiate refused for its rate is held before its answer
_TARPIT = 1000  # most such refusals held at once on a node


def client_ip(scope: Scope) -> str | None:
    """The key the client of ``scope`` is counted under (see :func:`ip_key`)."""
    client = scope.get("client")
    return ip_key(client[0] if client else None)


class Busy(Exception):
    """A session cap is reached: negotiate answers with the refusal."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class Gate:
    """The admission checks negotiate runs, and the answers to refusals."""

    def __init__(self, settings: Settings) -> None:
        self.counts = Admission(settings)
        self.settings = settings
        # A flood of refusals must not become a flood of log lines: one a second at
        # most, with the count of those left out.
        self._logged_at = -1.0
        self._unlogged = 0
        self._tarpitted = 0  # rate refusals being held back (see refuse_rate)
        # Load shedding (server/overload.py).
        # A refused client's session waits for it (the stall clock runs until its
        # Retry-After has passed), so the spread may reach a third of the longest window.
        longest = settings.resume_window * settings.resume_stretch / 3
        self.lag = LoopLag(settings.shed_lag, longest)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def refuse_overload(
        self, scope: Scope, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> bool:
        """True when the node is behind and this negotiate was refused (503 sent at once:
        holding it back would keep the connection the node is short of)."""
        refusal = self.lag.refusal()
        if refusal is None:
            return False
        await self.answer(scope, send, refusal, cors)
        return True

    async def refuse_rate(
        self, scope: Scope, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> bool:
        """Charge this negotiate to its IP; True when it was refused (429 sent)."""
        refusal = self.counts.negotiate(client_ip(scope), self._now())
        if refusal is None:
            return False
        held = await self._hold(refusal)
        await self.answer(scope, send, refusal, cors, close=not held)
        return True

    async def _hold(self, refusal: Refusal) -> bool:
        """Pause before answering a rate refusal; False (no pause) past _TARPIT held at
        once. A client that sends its next request only once it has the answer (any
        HTTP/1.1 client; uvicorn stops reading a pipelining one; a WebSocket client
        waiting for its close) gets one refusal per pause and connection, instead of
        costing the server a core. What a held one costs is bounded: past _TARPIT the
        answer is immediate (and, over HTTP, closes the connection)."""
        if self._tarpitted >= _TARPIT:
            return False
        self._tarpitted += 1
        try:
            await asyncio.sleep(min(float(refusal.retry_after), _PAUSE))
        finally:
            self._tarpitted -= 1
        return True

    async def refuse_upgrade(self, scope: Scope) -> Refusal | None:
        """The checks negotiate runs first (load shedding while it lasts, then the
        address's negotiate rate, charged), for a WebSocket that resumes without negotiating
        (:mod:`.wsresume`): the Refusal to close it with, else None. A rate refusal is
        held back as negotiate's is, so a client that ignores ``retry_after`` still gets
        one refusal per pause and connection."""
        # Shed only while the node stays behind: the upgrade is done by now, and serving
        # the resume costs little more than refusing it and taking the client's next
        # upgrade (a single late probe, the storm's first burst, shed nearly every
        # resume of a 3,000-client storm: docs/perf/ws-resume.md).
        refusal = self.lag.refusal() if self.lag.sustained() else None
        if refusal is not None:
            return refusal
        refusal = self.counts.negotiate(client_ip(scope), self._now())
        if refusal is not None:
            await self._hold(refusal)
        return refusal

    def admit(self, nonce: str, user: str | None, ip: str | None) -> None:
        """Hold a slot for the ticket ``nonce`` of a new session of ``user`` from ``ip``
        until the ticket expires or its session starts; raises :class:`Busy` when a cap
        is reached."""
        refusal = self.counts.check(user, ip)
        if refusal is not None:
            raise Busy(refusal)
        self.counts.hold(nonce, user, ip, self._now() + self.settings.ticket_ttl)

    def opened(self, sid: str, nonce: str, user: str | None) -> None:
        """Session ``sid`` starts with ticket ``nonce``; raises ProtocolError (4000,
        reconnect: the client negotiates again) when a ticket of another node would
        exceed this node's caps."""
        refusal = self.counts.opened(sid, nonce, user)
        if refusal is not None:
            raise ProtocolError(f"server busy: {refusal.message}", CloseCode.SHUTDOWN)

    async def answer(
        self,
        scope: Scope,
        send: Send,
        refusal: Refusal,
        cors: list[tuple[bytes, bytes]],
        close: bool = False,
    ) -> None:
        """Send the refusal (and log it, once a second at most); ``close``: ask for the
        connection to be closed after it."""
        now = self._now()
        if now - self._logged_at >= 1.0:
            client = scope.get("client")
            log.info(
                "anywire: negotiate refused (%d %s) to %s (and %d more in the last second)",
                refusal.status, refusal.message, client[0] if client else "unknown peer",
                self._unlogged,
            )  # fmt: skip
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1
        body = json.dumps({
            "error": "flood" if refusal.status == 429 else "busy",
            "code": refusal.code,
            "message": refusal.message,
            "retry_after": refusal.retry_after,
        }).encode()  # fmt: skip
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"retry-after", str(refusal.retry_after).encode()),
            *cors,
        ]
        if cors:
            headers.append((b"access-control-expose-headers", b"Retry-After"))
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


