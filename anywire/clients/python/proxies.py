"""HTTP(S) proxies for every transport of the Python client.

``proxy=None`` (the default) takes them from the environment, as curl and browsers do:
``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY``, with ``NO_PROXY`` listing hosts reached
directly (httpx's ``trust_env`` for negotiate, SSE, long-poll and POSTs; ``websockets``
reads the same variables for the WebSocket). ``proxy="http://proxy:3128"`` sends every
request through that proxy, whatever the environment says; ``proxy=False`` goes direct.
Plain HTTP requests are forwarded by the proxy; the WebSocket (and anything over TLS)
goes through a ``CONNECT`` tunnel, which proxies often allow only to port 443 (Squid's
default configuration): behind such a proxy a ``ws://`` server on another port falls
back to SSE or long-poll by itself.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Literal
from urllib.parse import urlsplit

import httpx

__all__ = ["ProxyOption", "check_proxy", "http_client", "ws_proxy"]

ProxyOption = str | Literal[False] | None
"""A proxy URL (``http://`` or ``https://``), None for the environment's, False for none."""


def check_proxy(proxy: ProxyOption) -> None:
    """Raise ValueError unless ``proxy`` is None, False or an http(s) proxy URL."""
    if proxy is None or proxy is False:
        return
    parts = urlsplit(proxy) if isinstance(proxy, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"proxy must be an http:// or https:// URL, None or False: {proxy!r}")


@cache
def _tls(trust_env: bool) -> ssl.SSLContext:
    """One verifying TLS context per process (with the environment's ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when ``trust_env``, read once). httpx builds a new one for every
    client otherwise, loading the CA bundle each time: ~50 ms of CPU per client, most of
    what a client cost to create, and what 500 clients reconnecting at once spent."""
    return httpx.create_ssl_context(trust_env=trust_env)


def http_client(proxy: ProxyOption) -> httpx.AsyncClient:
    """The HTTP client of negotiate, SSE, long-poll and POSTs, with ``proxy`` applied."""
    if proxy is None:
        # trust_env: the environment's proxies
        return httpx.AsyncClient(timeout=10.0, verify=_tls(True))
    if proxy is False:
        return httpx.AsyncClient(timeout=10.0, trust_env=False, verify=_tls(False))
    return httpx.AsyncClient(timeout=10.0, proxy=proxy, verify=_tls(True))


def ws_proxy(proxy: ProxyOption) -> str | Literal[True] | None:
    """``proxy`` as ``websockets.connect`` takes it (True: from the environment)."""
    if proxy is None:
        return True
    if proxy is False:
        return None
    return proxy
