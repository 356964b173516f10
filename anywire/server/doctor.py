"""The transport doctor's probe endpoints (opt-in: ``Settings(doctor=True)`` or
``anywire serve --doctor``), under anywire's own path prefix so that every proxy on the
way treats them as it treats the real transports:

* ``GET  {path}/doctor``: the browser page that runs the probe (``doctor.html``, which
  imports ``doctor.js`` from the packaged client);
* ``GET  {path}/doctor/echo``: which of the probe's own header (``X-Anywire-Doctor``),
  ``Authorization`` (``Bearer anywire-doctor-...``) and cookie (``anywire_doctor``)
  arrived, with their values. Only the probe's own values are echoed, never another
  header or cookie: an HttpOnly cookie must stay unreadable to scripts;
* ``GET  {path}/doctor/sse?s=N``: an event stream without padding that sends an event at
  once, then one every 0.5 s for N s (default 3, at most :data:`MAX_STREAM`), then ends;
* ``GET  {path}/doctor/hold?s=N``: answers after N s (at most :data:`MAX_HOLD`);
* WebSocket ``{path}/doctor/ws``: echoes text messages (at most :data:`WS_MESSAGES` of
  :data:`WS_BYTES` bytes, closed after :data:`WS_IDLE` s without one).

They are for anyone who can reach the server, so each is cheap: every request is charged
to the per-address negotiate rate (429 past it, as negotiate), bodies are never read,
holds and streams are capped in time and in number (:data:`MAX_OPEN` open at once per
node, :data:`MAX_PER_ADDRESS` per client address; 503 past it), and the Host and Origin
rules of every endpoint apply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import TYPE_CHECKING

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError
from ..transports.base import Receive, Scope, Send, header, query, send_json_error
from .admission import client_ip
from .mount import land
from .negotiate import json_response

if TYPE_CHECKING:
    from .app import Anywire

__all__ = ["MAX_HOLD", "MAX_OPEN", "MAX_PER_ADDRESS", "MAX_STREAM", "Doctor", "enable_doctor"]

MAX_HOLD = 60.0
"""Longest hold of ``/doctor/hold``, in seconds (a longer ``s`` is cut to it)."""
MAX_STREAM = 10.0
"""Longest ``/doctor/sse`` stream, in seconds."""
MAX_OPEN = 64
"""Most holds, streams and WebSockets of the doctor open at once on a node."""
MAX_PER_ADDRESS = MAX_OPEN // 2
"""Most of them open at once for one client address (a probe needs three; behind a proxy
that does not forward addresses every user shares one), so one address cannot take all."""
WS_MESSAGES = 20
WS_BYTES = 1024
WS_IDLE = 10.0
PROBE_HEADER = b"x-anywire-doctor"
PROBE_COOKIE = "anywire_doctor"
PROBE_BEARER = "Bearer anywire-doctor-"


def enable_doctor(aw: Anywire) -> None:
    """Switch the doctor endpoints on for ``aw`` (``anywire serve --doctor``)."""
    aw.settings = dataclasses.replace(aw.settings, doctor=True)
    aw.host.settings = aw.settings
    aw.doctor = Doctor(aw)


class Doctor:
    """The probe endpoints of one :class:`~anywire.server.app.Anywire`."""

    def __init__(self, aw: Anywire) -> None:
        self.aw = aw
        self.open: dict[str | None, int] = {}  # address -> holds, streams, sockets running

    async def __call__(self, tail: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer ``tail`` if it is a doctor endpoint; False when it is not one."""
        if tail != "/doctor" and not tail.startswith("/doctor/"):
            return False
        if scope["type"] == "websocket":
            if tail == "/doctor/ws":
                await self._ws(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 4502})
            return True
        routes = {
            "/doctor": self._page,
            "/doctor/echo": self._echo,
            "/doctor/sse": self._sse,
            "/doctor/hold": self._hold,
            "/doctor/ws": self._not_upgraded,
        }
        endpoint = routes.get(tail)
        if endpoint is None or scope.get("method") not in ("GET", "HEAD"):
            status = 404 if endpoint is None else 405
            await send_json_error(send, status, ProtocolError("no such endpoint", 4502))
            return True
        if not self.aw.origin_allowed(scope):
            await send_json_error(send, 403, ProtocolError("origin not allowed", 4505))
            return True
        cors = self.aw.cors_headers(scope)
        if await self.aw.host.issuer.gate.refuse_rate(scope, send, cors):
            return True  # 429: this address asks too often
        await endpoint(scope, receive, send, cors)
        return True

    # -- endpoints ------------------------------------------------------------------------
    async def _page(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> None:
        html = resources.files("anywire.server").joinpath("static/doctor.html").read_text("utf-8")
        landing = land(scope, self.aw.path)  # behind a mount: its prefix too
        public = landing.public if landing is not None else self.aw.path
        module = f"{public}/client/{self.aw.assets.version}/doctor.js"
        body = html.replace("{{DOCTOR_URL}}", module).encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _echo(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> None:
        auth = header(scope, b"authorization")
        await json_response(send, 200, {
            "doctor": True,
            "header": (header(scope, PROBE_HEADER) or "")[:100] or None,
            "authorization": auth if auth and auth.startswith(PROBE_BEARER) else None,
            "cookie": _probe_cookie(header(scope, b"cookie")),
        }, cors)  # fmt: skip

    async def _not_upgraded(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> None:
        # A plain GET here: something on the path removed the Upgrade headers.
        await json_response(send, 426, {"error": "upgrade_required", "doctor": True}, cors)

    async def _begin(
        self, scope: Scope, send: Send, cors: list[tuple[bytes, bytes]], default: float,
        cap: float,
    ) -> tuple[str | None, float] | None:  # fmt: skip
        """A held endpoint's start: its ``s`` parameter (``default``, at most ``cap``) and
        a slot for the client's address; None when it was answered already (400, 503)."""
        seconds = _seconds(query(scope).get("s"), default, cap)
        if seconds is None:
            await send_json_error(send, 400, ProtocolError("s must be seconds", 4502), cors)
            return None
        ip = client_ip(scope)
        if not await self._slot(ip, send, cors):
            return None
        return ip, seconds

    async def _hold(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> None:
        begun = await self._begin(scope, send, cors, 0.0, MAX_HOLD)
        if begun is None:
            return
        ip, seconds = begun
        try:
            # Held until the time is up or the client leaves (a hold nobody waits for
            # must not keep its slot).
            async with asyncio.timeout(seconds):
                while (await receive())["type"] != "http.disconnect":
                    pass
                return
        except TimeoutError:
            pass
        finally:
            self._free(ip)
        await json_response(send, 200, {"held": seconds}, cors)

    async def _sse(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> None:
        begun = await self._begin(scope, send, cors, 3.0, MAX_STREAM)
        if begun is None:
            return
        ip, seconds = begun
        try:
            headers = [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                *cors,
            ]  # no X-Accel-Buffering and no padding: the path is seen as it is
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            loop = asyncio.get_running_loop()
            start = loop.time()
            for n in range(int(seconds / 0.5) + 1):
                event = json.dumps({"n": n, "at": round(loop.time() - start, 3)})
                chunk = f"data: {event}\n\n".encode()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0.5)
            await send({"type": "http.response.body", "body": b""})
        except OSError:
            return  # the client left (uvicorn's ClientDisconnected)
        finally:
            self._free(ip)

    async def _ws(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        ip = client_ip(scope)
        refused = self.aw.host.issuer.gate.counts.negotiate(ip, asyncio.get_running_loop().time())
        if not self.aw.origin_allowed(scope):
            await send({"type": "websocket.close", "code": int(CloseCode.FORBIDDEN)})
            return
        if refused is not None or not self._take(ip):
            code = CloseCode.FLOOD if refused is not None else CloseCode.SHUTDOWN
            await send({"type": "websocket.close", "code": int(code)})
            return
        try:
            await send({"type": "websocket.accept"})
            for _ in range(WS_MESSAGES):
                async with asyncio.timeout(WS_IDLE):
                    message = await receive()
                if message["type"] != "websocket.receive":
                    return
                text = message.get("text")
                if text is None or len(text) > WS_BYTES:
                    break
                await send({"type": "websocket.send", "text": text})
            await send({"type": "websocket.close", "code": 1000})
        except TimeoutError:
            await send({"type": "websocket.close", "code": int(CloseCode.PING_TIMEOUT)})
        except OSError:
            return
        finally:
            self._free(ip)

    def _take(self, ip: str | None) -> bool:
        """Count one more open hold, stream or socket of ``ip``; False past a cap."""
        if sum(self.open.values()) >= MAX_OPEN or self.open.get(ip, 0) >= MAX_PER_ADDRESS:
            return False
        self.open[ip] = self.open.get(ip, 0) + 1
        return True

    def _free(self, ip: str | None) -> None:
        left = self.open[ip] - 1
        if left:
            self.open[ip] = left
        else:
            del self.open[ip]  # the table holds only addresses with something open

    async def _slot(self, ip: str | None, send: Send, cors: list[tuple[bytes, bytes]]) -> bool:
        if self._take(ip):
            return True
        error = ProtocolError("doctor busy, try again", CloseCode.SHUTDOWN)
        await send_json_error(send, 503, error, cors)
        return False


def _seconds(raw: str | None, default: float, cap: float) -> float | None:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, cap)


def _probe_cookie(raw: str | None) -> str | None:
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(PROBE_COOKIE)
    return None if morsel is None else morsel.value[:100]
