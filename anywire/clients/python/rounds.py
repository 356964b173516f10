"""A connection round of the Python client: negotiate, then try the offered transports in
order, negotiating again after each failure, until one delivers a hello (protocol
sections 2.3 and 14.2).

Which transports failed is remembered for the life of the client, oldest failure first,
and reported in every negotiate, reconnects included (as the JS client does): the server
then offers them last, so a transport that a proxy breaks costs its connect timeout once,
not at every reconnect. A remembered transport is tried again only when everything
offered before it has failed in the same round, and forgotten once it works.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ...core.closecodes import RENEGOTIATE, CloseCode
from ...core.flood import RESUME_COST
from ...core.frames import Connect, Hello, Resume
from .endpoints import endpoint
from .errors import AuthError, ConnectError
from .negotiate import negotiate
from .racing import Attempt, goodbye, race
from .transports import ClientTransport, TransportClosed, new_transport
from .wire import Negotiated, Offer
from .wsresume import can_resume_directly, direct_resume

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Fallback", "connect_round"]

log = logging.getLogger("anywire.client")

# Openings answered "negotiate again" (4000, 4004, 4007) retried in one connection round
# before the transport counts as failed.
_RENEGOTIATIONS = 3


class Fallback:
    """The transports that failed for one client, oldest failure first."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.why: dict[str, str] = {}
        """Why transports failed since the last negotiate (its ``failures`` field: told
        to the server once, for its metrics)."""
        self.lost: list[str] = []
        """Transports that lost a race without failing (slower, or black-holed for less
        than the connect timeout): not reported, but tried after the others by this
        client, so a resume (never raced) does not wait on them (:mod:`.racing`)."""
        self.last: str | None = None
        """The transport of the connection that ended last (a resume over the WebSocket
        may skip negotiate when it was the WebSocket: :mod:`.wsresume`)."""

    def fail(self, name: str, why: str = "error") -> None:
        """``name`` failed (again) for reason ``why``: it moves to the end, as the newest
        failure."""
        self.forget(name)
        self.failed.append(name)
        self.why[name] = why

    def take_why(self) -> dict[str, str]:
        """The failures to report in the next negotiate, forgotten once taken."""
        why, self.why = self.why, {}
        return why

    def ended(self, name: str, code: int | None, lived: float, silence: float) -> None:
        """A connection on ``name`` ended with ``code``, ``lived`` seconds after its hello.

        A buffering intermediary holds an event stream back until the server gives up on
        the silent client (4001) and ends it: hello and close then arrive together. The
        server's silence window started when it sent the hello, so a 4001 much sooner
        (under half of ``silence``) after the hello arrived means the hello itself was
        held back: the transport cannot carry the session, as if it had timed out (the
        JS client judges the same way). Only happens when the server's ping settings are
        shorter than the connect timeout, which otherwise catches this first."""
        self.last = name
        if code == CloseCode.PING_TIMEOUT and lived < silence / 2:
            log.info("anywire %s: held back until the server gave up; falling back", name)
            self.fail(name, "buffered")

    def forget(self, name: str) -> None:
        """``name`` works after all: offer it in its place again."""
        if name in self.failed:
            self.failed.remove(name)
        if name in self.lost:
            self.lost.remove(name)

    def lose(self, name: str) -> None:
        """``name`` lost a race: try it after the transports that did not."""
        if name not in self.lost:
            self.lost.append(name)


async def connect_round(client: Client) -> tuple[Negotiated, ClientTransport, Hello]:
    """Negotiate and try the offered transports in order, negotiating again after each
    failure with the failed ones reported, until one delivers a hello. A fresh connect
    races the offers (:mod:`.racing`) when ``client.race_after`` is set. Raises
    :class:`ConnectError` when every offer failed (:class:`AuthError` when refused)."""
    tried: set[str] = set()
    errors: list[str] = []
    again = 0  # renegotiations an opening asked for (bounded)
    if can_resume_directly(client):
        # One connection instead of negotiate + upgrade (protocol section 2.2.1); None:
        # it could not, negotiate as always (once per round: no loop).
        direct = await direct_resume(client)
        if direct is not None:
            return direct
    while True:
        neg = await _negotiate(client)
        offers = [o for o in neg.transports if o.name in client.transports and o.name not in tried]
        offers.sort(key=lambda o: o.name in client.fallback.lost)  # stable: losers last
        if not offers:
            detail = "; ".join(errors) or "no common transport"
            raise ConnectError(f"no transport worked: {detail}")
        client.pacer.configure(neg.flood_rate, neg.flood_burst)
        resuming = neg.resumable and client.peer.sid is not None
        if client.race_after is not None and not resuming and len(offers) > 1:
            # Racing only fresh connects: two resumes of one session would fight over it.
            won, failures, lost = await race(
                neg,
                offers,
                client.race_after,
                _attempt_for(client),
                lambda: _negotiate(client),
                lambda wind_down: client._track_task(client._hook_tasks, wind_down),
            )
        else:
            try:
                won, failures, lost = await _attempt(client, neg, offers[0]), [], []
            except Exception as error:  # any failure of this attempt: fall back
                won, failures, lost = None, [(offers[0].name, error)], []
        for name, exc in failures:
            code = exc.code if isinstance(exc, TransportClosed) else None
            if code in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN):
                if won is not None:
                    await won[1].close()
                raise AuthError(f"{name}: {exc}", code) from exc
            if code in RENEGOTIATE and again < _RENEGOTIATIONS:
                # The node is stopping, the credential expired, the ticket was not taken:
                # nothing wrong with the transport. Negotiate again (a load balancer sends
                # the next attempt elsewhere).
                again += 1
                log.info("anywire %s: %s; negotiating again", name, exc)
                continue
            reason = "no hello in time" if isinstance(exc, TimeoutError) else repr(exc)
            log.info("anywire transport %s failed: %s", name, reason)
            tried.add(name)
            client.fallback.fail(name, _why(exc))
            errors.append(f"{name}: {reason}")
        for name in lost:
            client.fallback.lose(name)
        if won is not None:
            client.fallback.forget(won[1].name)
            return won


def _attempt_for(client: Client) -> Attempt:
    async def attempt(neg: Negotiated, offer: Offer) -> tuple[Negotiated, ClientTransport, Hello]:
        return await _attempt(client, neg, offer)

    return attempt


async def _attempt(
    client: Client, neg: Negotiated, offer: Offer
) -> tuple[Negotiated, ClientTransport, Hello]:
    """Open ``offer`` with ``neg``'s ticket, bounded by the connect timeout; the
    transport is closed when this fails or is cancelled."""
    transport = new_transport(client, neg, offer)
    resuming = neg.resumable and client.peer.sid is not None
    if resuming:
        await client.pacer.take(RESUME_COST)  # what the server charges a resume
    opening: Connect | Resume = (
        Resume(neg.ticket, client.peer.in_last) if resuming else Connect(neg.ticket)
    )
    try:
        async with asyncio.timeout(client.connect_timeout):
            hello = await transport.open(opening)
        if (problem := client.peer.hello_problem(hello)) is not None:
            raise TransportClosed(None, f"impossible hello: {problem}")
    except asyncio.CancelledError:
        # Lost a race, or the client closed: the server may hold a session already (a
        # buffering proxy holds the hello back): end it now, not after resume_window.
        await goodbye(transport)
        raise
    except BaseException:
        await transport.close()
        raise
    return neg, transport, hello


def _why(exc: BaseException) -> str:
    """How an attempt failed, in the words of negotiate's ``failures`` field."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, TransportClosed):
        return exc.why
    return "error"


async def _negotiate(client: Client) -> Negotiated:
    """``POST {url}{path}/negotiate`` with a fresh token; raises AuthError/ConnectError."""
    body: dict[str, Any] = {
        "v": 1,
        "ns": client.namespace,
        "transports": list(client.transports),
        "codecs": list(dict.fromkeys([client.codec, "json"])),
        "failed": list(client.fallback.failed),
    }
    failures = client.fallback.take_why()
    if failures:
        body["failures"] = failures
    if client._neg is not None and client.peer.sid is not None:
        body["resume"] = client._neg.token
        await client.pacer.take(RESUME_COST)  # so does a negotiate that resumes
    since = client.continuity.since()
    if since:
        body["since"] = since
    ask = client.idle_cuts.request_ms()  # the heartbeat option, or sooner after idle cuts
    if ask is not None:
        body["ping_interval"] = ask
    return await negotiate(
        client._http_client(),
        endpoint(client.url, client.path),
        body,
        client.headers,
        client._token,
        client.connect_timeout,
    )
