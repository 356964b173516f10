"""The Python client's resume over the WebSocket without negotiate (protocol section
2.2.1): one connection per resume instead of a negotiate and then the upgrade.

Tried first in a reconnect round when the client holds a session, its last connection
was a WebSocket and the server's last negotiate answer said ``ws_resume``. Whatever goes
wrong short of a refused credential sends the round on to negotiate, as before: a
server without the support, a proxy that breaks it or a session the server no longer
has costs one connection, never a loop. A refusal that says when to come back (load
shedding, the address's negotiate rate, the session's flood budget: ``retry_after=N`` in
the close reason) is a :class:`ConnectError` carrying that wait, which the client's
reconnect loop honours like a negotiate's ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import TYPE_CHECKING

from ...core.closecodes import CloseCode
from ...core.flood import RESUME_COST
from ...core.frames import Hello, ResumeDirect
from .errors import AuthError, ConnectError
from .negotiate import MAX_RETRY_AFTER, resolve_token
from .racing import goodbye
from .transport import ClientTransport, TransportClosed
from .transports import new_transport
from .websocket import WebSocketTransport
from .wire import Negotiated

if TYPE_CHECKING:
    from .client import Client

__all__ = ["can_resume_directly", "direct_resume", "retry_after_in"]

log = logging.getLogger("anywire.client")

_RETRY = re.compile(r"retry_after=(\d{1,6})\s*$")


def retry_after_in(reason: str) -> float | None:
    """The wait (seconds) a close reason ends with (``...; retry_after=N``), if any."""
    found = _RETRY.search(reason or "")
    return None if found is None else min(float(found.group(1)), MAX_RETRY_AFTER)


def can_resume_directly(client: Client) -> bool:
    """Whether a reconnect of ``client`` may skip negotiate: it holds a session, its last
    connection was a WebSocket, that server said it takes such a resume, and the client
    wants no other ping interval than the one it was granted (only negotiate can ask for
    one: after idle cuts the client asks for a shorter one, liveness.py)."""
    neg = client._neg
    asked = client.idle_cuts.request_ms()
    return (
        client.ws_resume
        and neg is not None
        and neg.ws_resume
        and client.peer.sid is not None
        and client.fallback.last == "websocket"
        and any(o.name == "websocket" for o in neg.transports)
        and (asked is None or asked == round(neg.ping_interval * 1000))
    )


async def direct_resume(client: Client) -> tuple[Negotiated, ClientTransport, Hello] | None:
    """Resume the client's session over a new WebSocket with no negotiate, bounded by
    the connect timeout. None: not possible now, negotiate instead (the caller goes on
    in the same round). Raises AuthError (credential refused: terminal) or ConnectError
    with ``retry_after`` (come back later)."""
    neg = client._neg
    assert neg is not None
    offer = next(o for o in neg.transports if o.name == "websocket")
    transport = new_transport(client, neg, offer)
    assert isinstance(transport, WebSocketTransport)  # offer is the websocket one
    try:
        async with asyncio.timeout(client.connect_timeout):
            # What negotiate would be sent: a fresh credential from a callable.
            credential = await resolve_token(client._token)
            await client.pacer.take(RESUME_COST)  # what the server charges a resume
            first = ResumeDirect(neg.token, client.peer.in_last, credential)
            hello = await transport.resume_directly(first)
        if not hello.recovered or hello.sid != neg.sid:
            raise TransportClosed(None, "a resume without negotiate must recover the session")
        if (problem := client.peer.hello_problem(hello)) is not None:
            raise TransportClosed(None, f"impossible hello: {problem}")
    except asyncio.CancelledError:
        await goodbye(transport)  # the client is closing: end what may have resumed
        raise
    except TransportClosed as exc:
        await transport.close()
        _refused(exc)  # raises when the refusal says more than "negotiate"
        return None
    except Exception as exc:  # a failed upgrade, a timeout, a dead network: negotiate
        await transport.close()
        log.info("anywire: resume without negotiate failed (%r); negotiating", exc)
        return None
    return _renewed(neg, hello), transport, hello


def _refused(exc: TransportClosed) -> None:
    """What a refusal means (see the module docstring): AuthError (terminal) or
    ConnectError with ``retry_after``; returns when the client should negotiate now."""
    code = exc.code
    if code in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN):
        raise AuthError(f"websocket resume: {exc}", code) from exc
    wait = retry_after_in(exc.reason) if code in (CloseCode.SHUTDOWN, CloseCode.FLOOD) else None
    if wait is not None:
        raise ConnectError(f"websocket resume refused: {exc}", code, wait) from exc
    log.info("anywire: resume without negotiate refused (%s); negotiating", exc)
    return None


def _renewed(neg: Negotiated, hello: Hello) -> Negotiated:
    """``neg`` with the credential lifetime the direct resume's ``hello`` gave (as
    negotiate's answer gives it: absent, the credential does not expire), counted from
    the hello. Negotiate's older figure would be wrong for the credential just sent: the
    client's token source may hand out shorter-lived ones since, or expiring ones where
    the first did not expire."""
    expires_in = None if hello.expires_in is None else hello.expires_in / 1000
    return dataclasses.replace(neg, expires_in=expires_in)
