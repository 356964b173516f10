"""The negotiate request of the Python client (protocol section 3): one HTTP exchange,
its errors turned into the client's exceptions."""

from __future__ import annotations

import asyncio
import email.utils
import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from ...core.closecodes import CloseCode
from .errors import AuthError, ConnectError
from .wire import Negotiated, error_code

__all__ = ["TokenSource", "negotiate", "resolve_token", "retry_after"]

MAX_RETRY_AFTER = 600.0
"""Longest ``Retry-After`` honoured, in seconds (a larger one is read as this)."""

TokenSource = str | Callable[[], str | Awaitable[str | None] | None] | None
"""A bearer token, or a callable (plain or async) giving a fresh one per negotiate."""


async def resolve_token(source: TokenSource) -> str | None:
    """The token ``source`` gives now (a failing callable is a ConnectError)."""
    if not callable(source):
        return source
    try:
        token = source()
        if inspect.isawaitable(token):
            token = await token
    except Exception as exc:
        raise ConnectError(f"token callable failed: {exc!r}") from exc
    return token


async def negotiate(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: Mapping[str, str],
    token: TokenSource,
    timeout: float,
) -> Negotiated:
    """``POST {url}/negotiate`` (``url``: the endpoint prefix, ``/anywire`` included)
    with ``body`` and a fresh token, all within ``timeout`` seconds. Raises AuthError
    (401, 403) or ConnectError (anything else)."""
    try:
        async with asyncio.timeout(timeout):
            bearer = await resolve_token(token)
            sent = dict(headers)
            if bearer:
                sent["Authorization"] = f"Bearer {bearer}"
            response = await http.post(url + "/negotiate", json=body, headers=sent)
    except TimeoutError:
        raise ConnectError(f"negotiate: no answer within {timeout} s") from None
    except (httpx.HTTPError, OSError) as exc:
        raise ConnectError(f"negotiate failed: {exc!r}") from exc
    status = response.status_code
    if status != 200:
        code = error_code(response.content, response.headers.get("content-type", ""))
        message = f"negotiate refused: HTTP {status} {error_message(response)}".rstrip()
        if status == 401:
            raise AuthError(message, code or CloseCode.UNAUTHORIZED)
        if status == 403:
            raise AuthError(message, code or CloseCode.FORBIDDEN)
        raise ConnectError(message, code, retry_after(response))
    try:
        return Negotiated.parse(response.json())
    except ValueError as exc:
        raise ConnectError(f"bad negotiate answer: {exc}") from exc


def error_message(response: httpx.Response) -> str:
    """The ``message`` of an error body, or its text on one line (an HTML error page)."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return ""


def retry_after(response: httpx.Response) -> float | None:
    """The wait a 503 or 429 asks for, in seconds: its ``Retry-After`` header (seconds
    or an HTTP date), else the ``retry_after`` of its JSON body; None without either."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after")
    seconds: float | None = None
    if value is not None:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                seconds = (when - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                seconds = None
    if seconds is None:
        try:
            body = response.json()
        except ValueError:
            body = None
        field = body.get("retry_after") if isinstance(body, dict) else None
        if isinstance(field, int | float) and not isinstance(field, bool):
            seconds = float(field)
    if seconds is None or seconds != seconds:  # absent, or NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
