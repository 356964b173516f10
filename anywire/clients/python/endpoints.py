"""Where the client's requests go: the negotiate URL from ``url`` and ``path``, and the
base the transport URLs of a negotiate answer are resolved against.

negotiate's offers and ``send_url`` are absolute paths on the server's origin (protocol
section 3.3). A server mounted under a prefix (Starlette ``Mount``, uvicorn
``--root-path``, a Litestar app inside either) puts that prefix in them, so they are
resolved against the *origin* of ``url``: ``http://host/api`` + ``/api/anywire/ws`` must
not become ``http://host/api/api/anywire/ws``. A reverse proxy that strips a prefix the
server does not know about gives paths without it; those are resolved against ``url``
itself, as before, so ``/anywire/ws`` becomes ``http://host/api/anywire/ws``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .wire import Negotiated

__all__ = ["endpoint", "transport_base"]


def endpoint(url: str, path: str) -> str:
    """``url`` and ``path`` joined: the prefix of anywire's endpoints
    (``{endpoint}/negotiate``). ``path`` must be empty or start with ``/``."""
    if path and not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    return url.rstrip("/") + path.rstrip("/")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def transport_base(url: str, path: str, neg: Negotiated) -> str:
    """What the offers and ``send_url`` of ``neg`` are appended to: the origin of
    ``url`` when they lie under the endpoint prefix the client negotiated at (the server
    knows its mount), else ``url`` (a proxy strips a prefix the server never sees)."""
    prefix = urlsplit(endpoint(url, path)).path
    if neg.send_url.startswith(prefix + "/"):
        return origin(url)
    return url.rstrip("/")
