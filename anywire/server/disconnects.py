"""Disconnect sessions from the server side: one session by id, or every session of a
user, on this node and, with Redis, on every live node.

The server API's ``POST {path}/api/disconnect`` (server/publishapi.py) is its caller. A
session is closed with 4500 NORMAL (terminal: the client does not reconnect on its own)
and ended, including one in its resume window with no connection: it cannot be resumed.
It does not stop the client from connecting again with a valid credential: revoke that
in the application (its auth, or a connect hook that raises ``Reject``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from ..core.closecodes import CloseCode
from .errors import BrokerUnavailable

if TYPE_CHECKING:
    from .app import Anywire
    from .host import SessionHost

__all__ = ["REASON", "disconnect", "disconnect_here"]

REASON = "disconnected by the server"

NODE_TIMEOUT = 5.0
"""Longest wait for another node to answer (seconds)."""


def disconnect_here(
    host: SessionHost, *, sid: str | None, user: str | None, ns: str | None, reason: str
) -> int:
    """Close and end the matching sessions of this node; returns how many."""
    if sid is not None:
        sess = host.sessions.get(sid)
        found = [sess] if sess is not None and ns in (None, sess.namespace) else []
    else:
        # (One namespace: one key. Any namespace: every key is looked at; the users
        # index is by (namespace, user), and a second index only for this would cost
        # memory on every session.)
        keys = [(ns, user)] if ns is not None else [k for k in host.users if k[1] == user]
        found = [
            host.sessions[s]
            for key in keys
            for s in list(host.users.get(key, ()))
            if s in host.sessions
        ]
    for sess in found:
        host.close_session(sess, CloseCode.NORMAL, reason)
    return len(found)


async def disconnect(
    app: Anywire, *, sid: str | None, user: str | None, ns: str | None, reason: str
) -> tuple[int, int]:
    """:func:`disconnect_here` on this node and every other live node (with Redis).
    Returns how many sessions were disconnected and how many nodes did not answer (their
    sessions are not counted). Raises :class:`BrokerUnavailable` when Redis cannot say
    where the sessions are."""
    count = disconnect_here(app.host, sid=sid, user=user, ns=ns, reason=reason)
    cluster = app.cluster
    if cluster is None or (sid is not None and count):
        return count, 0
    try:
        if sid is not None:
            owner = await cluster.owner(sid)
            nodes = [owner] if owner is not None and owner != cluster.node else []
        else:
            nodes = await cluster.live_nodes()
    except (RedisError, OSError, BrokerUnavailable) as exc:
        raise BrokerUnavailable(f"sessions unknown: Redis unavailable ({exc})") from exc
    message = {"op": "disconnect", "sid": sid, "user": user, "ns": ns, "reason": reason}
    replies = await asyncio.gather(
        *(cluster.broker.request(node, message, NODE_TIMEOUT) for node in nodes),
        return_exceptions=True,
    )
    answered = [r["n"] for r in replies if isinstance(r, dict) and isinstance(r.get("n"), int)]
    return count + sum(answered), len(replies) - len(answered)
