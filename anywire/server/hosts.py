"""The Host allow-list (``Settings.allowed_hosts``): which ``Host`` header values the
server answers to.

Why it exists: the same-origin rule (protocol section 11.5) accepts a browser whose
``Origin`` equals ``<scheme>://<Host>``. A DNS-rebinding attacker controls both: their
page at ``http://evil.example:8000`` rebinds ``evil.example`` to this server's address,
and its requests then carry ``Host: evil.example:8000`` and the matching ``Origin``.
Only a list of the names the server really has tells such a request apart.

Patterns follow Django's ``ALLOWED_HOSTS``: an exact host name (case-insensitive, the
port ignored), ``.example.com`` for that domain and all its subdomains, ``*`` for any.
An empty list accepts any Host (the default, for development).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.errors import ProtocolError
from ..transports.base import Receive, Scope, Send, header, send_json_error

if TYPE_CHECKING:
    from .app import Anywire

__all__ = ["allow_hosts", "host_allowed", "host_name", "matches", "refuse_host"]


def host_name(value: str) -> str:
    """The host part of a ``Host`` header, lower-case, without the port or a final dot
    (``[::1]:8000`` gives ``[::1]``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    name, _, _ = value.partition(":")
    return name.rstrip(".")


def matches(name: str, pattern: str) -> bool:
    """Whether host ``name`` (from :func:`host_name`) matches one allow-list pattern."""
    pattern = pattern.strip().lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("."):
        return name == pattern[1:] or name.endswith(pattern)
    return name == pattern


def host_allowed(scope: Scope, allowed: Sequence[str]) -> bool:
    """Whether the request's Host is allowed: always with an empty list; never without
    a Host header once a list is set."""
    if not allowed:
        return True
    value = header(scope, b"host")
    if value is None:
        return False
    name = host_name(value)
    return bool(name) and any(matches(name, p) for p in allowed)


async def refuse_host(scope: Scope, receive: Receive, send: Send) -> None:
    """Refuse a request whose Host is not allowed: 400/4502 on HTTP, a refused upgrade
    (403) on WebSocket. No CORS headers: nothing of this server is for that page."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect; closing before accept answers 403
        await send({"type": "websocket.close", "code": 4502})
        return
    await send_json_error(send, 400, ProtocolError("host not allowed", 4502))


def allow_hosts(aw: Anywire, names: Sequence[str]) -> None:
    """Add ``names`` to ``aw``'s ``allowed_hosts`` (the CLI's ``--allowed-host``), before
    it serves its first request."""
    merged = tuple(dict.fromkeys([*aw.settings.allowed_hosts, *names]))
    aw.settings = dataclasses.replace(aw.settings, allowed_hosts=merged)
    aw.host.settings = aw.settings
