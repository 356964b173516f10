"""The transport doctor's probe: what works between here and an anywire server.

With the server's doctor endpoints on (``anywire serve --doctor``), every check runs
against them (:mod:`anywire.server.doctor`): a WebSocket echo, a padding-free event
stream, a ladder of held requests, a header and cookie echo. With them off, the probe
goes through the real negotiate and transports (a ``--token`` is needed where the server
wants credentials): each transport's first frame and its time; holds and headers are then
reported as not checked. The checks run concurrently, each bounded in time.

:func:`probe` returns the facts :func:`anywire.doctor.rules.diagnose` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from ..clients.python.wire import ws_url

__all__ = ["Options", "endpoint", "probe"]

Facts = dict[str, Any]
NETWORK = (httpx.HTTPError, OSError, WebSocketException)


@dataclass(frozen=True)
class Options:
    """How far the probe goes.

    :param token: bearer token for negotiate (only used without the doctor endpoints).
    :param holds: hold times tried in turn, in seconds; the ladder stops at the first cut.
    :param max_hold: most seconds all holds may take together (a hold that would pass it
        is not tried).
    :param timeout: how long to wait for an answer that should come at once, in seconds.
    :param stream: how long the doctor's event stream lasts, in seconds.
    """

    token: str | None = None
    holds: Sequence[float] = (5.0, 15.0, 30.0)
    max_hold: float = 60.0
    timeout: float = 5.0
    stream: float = 3.0
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))


def endpoint(url: str) -> str:
    """anywire's endpoint prefix for the URL a user gives: ``https://host`` means
    ``https://host/anywire``; a URL with a path is taken as the prefix itself."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    path = parts.path.rstrip("/") or "/anywire"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")[:160]


async def probe(url: str, options: Options | None = None) -> Facts:
    """Probe every transport of the server at ``url`` (see :func:`endpoint`)."""
    opts = options or Options()
    base = endpoint(url)
    async with httpx.AsyncClient(timeout=opts.timeout) as http:
        echo, off = await _echo(http, base, opts)
        if echo is not None:
            ws, sse, longpoll = await asyncio.gather(
                _doctor_ws(base, opts), _doctor_sse(http, base, opts), _ladder(http, base, opts)
            )
            return {"url": base, "doctor": True, "websocket": ws, "sse": sse,
                    "longpoll": longpoll, "path": echo, "unchecked": []}  # fmt: skip
        facts: Facts = {"url": base, "doctor": False, "unchecked": []}
        results = await asyncio.gather(
            *(_session(http, base, name, opts) for name in ("websocket", "sse", "longpoll"))
        )
        for name, (found, refused) in zip(("websocket", "sse", "longpoll"), results, strict=True):
            facts[name] = found
            if refused and refused not in facts["unchecked"]:
                facts["unchecked"].append(refused)
        facts["path"] = {"checked": False}
        facts["unchecked"] += [
            f"holds longer than the poll window, and whether headers or cookies are "
            f"stripped: {off}",
        ]
        return facts


# -- with the doctor endpoints -----------------------------------------------------------
async def _echo(http: httpx.AsyncClient, base: str, opts: Options) -> tuple[Facts | None, str]:
    """The header and cookie echo; None and why when there is none."""
    sent = {
        "X-Anywire-Doctor": opts.nonce,
        "Authorization": f"Bearer anywire-doctor-{opts.nonce}",
        "Cookie": f"anywire_doctor={opts.nonce}",
    }
    try:
        response = await http.get(base + "/doctor/echo", headers=sent)
        body = response.json() if response.status_code == 200 else None
    except httpx.HTTPError as exc:
        return None, f"the server did not answer ({_why(exc)})"
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("doctor") is not True:
        if response.status_code == 429:
            return None, "the doctor endpoints refused this address (HTTP 429): try later"
        return None, "the server's doctor endpoints are off (anywire serve --doctor)"
    return {
        "checked": True,
        "header": body.get("header") == opts.nonce,
        "authorization": body.get("authorization") == sent["Authorization"],
        "cookie": body.get("cookie") == opts.nonce,
    }, ""


async def _upgrade(url: str, opts: Options) -> tuple[Facts, ClientConnection | None]:
    """The WebSocket upgrade alone: the facts so far, and the socket when it upgraded."""
    facts: Facts = {"checked": True, "upgraded": False, "passes": False}
    try:
        async with asyncio.timeout(opts.timeout):
            ws = await connect(url, open_timeout=None, ping_interval=None, close_timeout=0.5,
                               compression=None)  # fmt: skip
    except InvalidStatus as exc:
        facts["status"] = exc.response.status_code
        return facts, None
    except TimeoutError:
        facts["error"] = f"no upgrade within {opts.timeout:g} s"
        return facts, None
    except NETWORK as exc:
        facts["error"] = _why(exc)
        return facts, None
    facts["upgraded"] = True
    return facts, ws


async def _doctor_ws(base: str, opts: Options) -> Facts:
    facts, ws = await _upgrade(ws_url(base, "/doctor/ws"), opts)
    if ws is None:
        return facts
    try:
        start = time.monotonic()
        async with asyncio.timeout(opts.timeout):
            await ws.send(opts.nonce)
            while await ws.recv() != opts.nonce:
                pass
        facts["passes"], facts["rtt_ms"] = True, _ms(start)
    except TimeoutError:
        facts["error"] = f"no echo within {opts.timeout:g} s"
    except NETWORK as exc:
        facts["error"] = _why(exc)
    finally:
        ws.transport.abort()  # no closing handshake: it may be black-holed too
    return facts


async def _doctor_sse(http: httpx.AsyncClient, base: str, opts: Options) -> Facts:
    facts: Facts = {"checked": True}
    url = f"{base}/doctor/sse?{urlencode({'s': opts.stream})}"
    start = time.monotonic()
    try:
        async with asyncio.timeout(opts.stream + opts.timeout):
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            wait = httpx.Timeout(opts.timeout, read=opts.stream + opts.timeout)
            async with http.stream("GET", url, headers=headers, timeout=wait) as response:
                facts["status"] = response.status_code
                if response.status_code != 200:
                    return facts
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        facts["first_event_ms"] = facts["rtt_ms"] = _ms(start)
                        return facts
    except (TimeoutError, httpx.TimeoutException):
        facts["error"] = f"no event within {opts.stream + opts.timeout:g} s"
        facts["timed_out"] = True
    except NETWORK as exc:
        facts["error"] = _why(exc)
    return facts


async def _ladder(http: httpx.AsyncClient, base: str, opts: Options) -> Facts:
    """An unheld request (its time is the latency), then each hold of the ladder until
    one is cut or the next would pass ``max_hold``."""
    facts: Facts = {"checked": True, "held_s": 0}
    start = time.monotonic()
    try:
        response = await http.get(base + "/doctor/hold", params={"s": 0})
    except NETWORK as exc:
        facts["error"] = _why(exc)
        return facts
    if response.status_code != 200:
        facts["status"] = response.status_code
        return facts
    facts["rtt_ms"] = _ms(start)
    spent = 0.0
    for hold in opts.holds:
        if spent + hold > opts.max_hold:
            break
        start = time.monotonic()
        try:
            response = await http.get(base + "/doctor/hold", params={"s": hold},
                                      timeout=hold + opts.timeout)  # fmt: skip
            answer = response.json() if response.status_code == 200 else {}
            held = answer.get("held") if isinstance(answer, dict) else None
        except (*NETWORK, ValueError):
            held = None
        spent += time.monotonic() - start
        if not isinstance(held, int | float):
            facts["cut_after_s"] = round(time.monotonic() - start, 1)
            break
        facts["held_s"] = held  # the server's cap (60 s) may have shortened it
    return facts


# -- through the real negotiate and transports -------------------------------------------
async def _session(
    http: httpx.AsyncClient, base: str, name: str, opts: Options
) -> tuple[Facts, str | None]:
    """One session on transport ``name``: negotiate, open, the first frame (hello),
    close. Returns the facts and, when negotiate refused, why (nothing was checked)."""
    headers = {"Authorization": f"Bearer {opts.token}"} if opts.token else {}
    body = {"v": 1, "transports": [name], "codecs": ["json"]}
    try:
        response = await http.post(base + "/negotiate", json=body, headers=headers)
        offer = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        return {"checked": False}, f"negotiate failed ({_why(exc)})"
    if not isinstance(offer, dict) or not offer.get("transports"):
        hint = " (pass --token)" if response.status_code in (401, 403) else ""
        why = f"the transports: negotiate was refused (HTTP {response.status_code}){hint}"
        return {"checked": False}, why
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    path = offer["transports"][0]["url"]
    if name == "websocket":
        return await _session_ws(origin, path, offer, opts), None
    return await _session_http(http, origin, path, offer, name, opts), None


async def _session_ws(origin: str, path: str, offer: dict[str, Any], opts: Options) -> Facts:
    facts, ws = await _upgrade(ws_url(origin, path), opts)
    if ws is None:
        return facts
    try:
        start = time.monotonic()
        async with asyncio.timeout(opts.timeout):
            await ws.send(json.dumps({"t": "connect", "ticket": offer["ticket"]}))
            await ws.recv()  # the hello (or a close with a code: either way it passed)
        facts["passes"], facts["rtt_ms"] = True, _ms(start)
        await ws.send(json.dumps({"t": "close", "c": 4500, "m": "doctor"}))
    except TimeoutError:
        facts["error"] = f"no answer within {opts.timeout:g} s"
    except NETWORK as exc:
        facts["error"] = _why(exc)
    finally:
        ws.transport.abort()
    return facts


async def _session_http(
    http: httpx.AsyncClient, origin: str, path: str, offer: dict[str, Any], name: str,
    opts: Options,
) -> Facts:  # fmt: skip
    """SSE or long-poll: the opening request and the time to its first frame."""
    facts: Facts = {"checked": True}
    url = f"{origin}{path}?{urlencode({'ticket': offer['ticket']})}"
    start = time.monotonic()
    opening = b""
    try:
        async with asyncio.timeout(opts.timeout):
            async with http.stream("GET", url, headers={"Accept": "*/*"}) as response:
                facts["status"] = response.status_code
                if response.status_code == 200 and name == "longpoll":
                    opening = await response.aread()
                    facts["rtt_ms"] = _ms(start)
                elif response.status_code == 200:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            facts["first_event_ms"] = facts["rtt_ms"] = _ms(start)
                            break
    except (TimeoutError, httpx.TimeoutException):
        facts["error"] = f"no frame within {opts.timeout:g} s"
        facts["timed_out"] = True
    except NETWORK as exc:
        facts["error"] = _why(exc)
    if facts.get("rtt_ms") is not None:
        if name == "longpoll":
            await _held_poll(http, origin + path, offer, opening, facts, opts)
        await _close(http, origin + offer["send_url"], offer["token"])
    return facts


async def _held_poll(
    http: httpx.AsyncClient, url: str, offer: dict[str, Any], opening: bytes, facts: Facts,
    opts: Options,
) -> None:  # fmt: skip
    """One real poll, which the server holds for its poll window (answering 204) unless
    something on the path cuts it first; skipped when the window is over ``max_hold``."""
    window = float(offer.get("poll_window", 0)) / 1000
    if not 0 < window <= opts.max_hold:
        return
    try:
        frames = json.loads(opening)
        seen = [f["s"] for f in frames if isinstance(f, dict) and isinstance(f.get("s"), int)]
    except (ValueError, TypeError):
        return
    params = {"ack": max(seen, default=0)}
    start = time.monotonic()
    try:
        response = await http.get(url, params=params, headers={"X-Anywire-Token": offer["token"]},
                                  timeout=window + opts.timeout)  # fmt: skip
        held = response.status_code in (200, 204)
    except NETWORK:
        held = False
    elapsed = round(time.monotonic() - start, 1)
    if held:
        facts["held_s"] = elapsed
    else:
        facts["cut_after_s"] = elapsed


async def _close(http: httpx.AsyncClient, url: str, token: str) -> None:
    """End the probe's session (a client close), so it does not wait out its window."""
    body = json.dumps({"t": "close", "c": 4500, "m": "doctor"})
    headers = {"X-Anywire-Token": token, "Content-Type": "application/json"}
    with contextlib.suppress(httpx.HTTPError):
        await http.post(url, content=body, headers=headers)
