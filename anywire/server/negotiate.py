"""``POST /anywire/negotiate`` (protocol section 3): who the caller is, which session, which
transports in which order, with a connection ticket.

Every answer is told to the observers (``app.observers``) as one outcome: ``ok``,
``auth``, ``flood``, ``busy``, ``bad_request``, ``origin``, ``no_transport`` or
``broker``; and each transport the client reports in ``failures`` (why it failed since
its previous negotiate) as a fallback from that transport to the one offered first now.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..core.closecodes import CloseCode
from ..core.errors import AuthError, ProtocolError, RemoteProtocolError
from ..core.flood import FloodError
from ..core.frames import UINT_LIMIT
from ..core.negotiation import choose_codec, order_transports
from ..core.pinginterval import asked_interval, grant_interval, poll_hold
from ..core.settings import TRANSPORTS
from ..core.streams import user_stream
from ..core.values import value_error
from ..transports.base import (
    Receive,
    Scope,
    Send,
    log_refused,
    read_body,
    refuse_origin,
    send_json_error,
)
from .admin import authenticate
from .admission import Busy, client_ip
from .auth import bearer
from .errors import BrokerUnavailable
from .mount import land
from .refresh import expires_in_ms

if TYPE_CHECKING:
    from .app import Anywire

__all__ = ["FAILURE_REASONS", "Negotiator", "json_response"]

FAILURE_REASONS = frozenset({"upgrade", "timeout", "buffered", "idle_cut", "closed", "error"})
"""Why a transport failed, as clients report it in ``failures`` (protocol section 3.1):
the upgrade was refused, no hello came in time, the hello was held back (a buffering
proxy), the connection was cut when idle, it closed before its hello, anything else.
Another well-formed reason is counted as ``other`` (metric labels stay bounded)."""

_REASON = re.compile(r"[a-z_]{1,32}")


class Negotiator:
    """The negotiate endpoint of one :class:`~anywire.server.app.Anywire`."""

    def __init__(self, app: Anywire) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counters = self.app.host.counters  # every request, answered or not
        counters["negotiations"] = counters.get("negotiations", 0) + 1
        answered = await self._answer(scope, receive, send)
        if answered is not None:
            self.app.observers.negotiated(*answered)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[str, tuple[str, ...]] | None:
        """Answer the request; returns its outcome and the transports offered (None: the
        client went away)."""
        app, host = self.app, self.app.host
        settings = app.settings
        cors = app.cors_headers(scope)
        gate = host.issuer.gate  # admission control (server/admission.py)
        if await refuse_origin(host, scope, send):
            return "origin", ()
        if await gate.refuse_overload(scope, send, cors):
            return "busy", ()
        if await gate.refuse_rate(scope, send, cors):
            return "flood", ()
        try:
            raw = await read_body(receive, 64 * 1024)
            # The JSON codec's decoder: any malformed body (deep nesting included) is a
            # RemoteProtocolError (400/4502), before any credential is looked at.
            codec = host.codec("json")
            body = codec.decode(raw) if raw.strip() else {}
            if codec.suspect(raw):
                problem = value_error(body, settings.max_depth)
                if problem is not None:
                    raise RemoteProtocolError(f"negotiate body: {problem}")
            if not isinstance(body, dict):
                raise RemoteProtocolError("negotiate body must be a JSON object")
            version = body.get("v", 1)
            if type(version) is not int or version != 1:
                raise RemoteProtocolError(f"unsupported protocol version {body.get('v')!r}")
            # Every field is checked before the credential (a cheap refusal first).
            namespace = _str(body, "ns", "/")
            caps = _strs(body, "transports", TRANSPORTS)
            codecs = _strs(body, "codecs", ("json",))
            failed = _strs(body, "failed", ())
            failures = _failures(body.get("failures"))
            resume = body.get("resume") if isinstance(body.get("resume"), str) else None
            since = _positions(body.get("since"))
            user_since = _position(body.get("user_since"))
            interval = grant_interval(settings, asked_interval(body.get("ping_interval")))
            if resume is not None:
                # Before the credential is checked: a flooding client's reconnects are
                # refused at the cost of a signature check (429, the session is kept).
                host.issuer.charge_resume(resume)
            identity = await authenticate(app, namespace, bearer(scope), scope)  # /$admin too
            if user_since is not None and identity.user is not None:
                since.setdefault(user_stream(namespace, identity.user), user_since)
        except ConnectionResetError:
            return None
        except AuthError as exc:
            await host.refresher.refuse_http(send, exc, cors, "negotiate")
            return "auth", ()
        except FloodError as exc:
            await send_json_error(send, 429, exc, cors)
            return "flood", ()
        except (ProtocolError, ValueError) as exc:
            err = exc if isinstance(exc, ProtocolError) else RemoteProtocolError(str(exc))
            log_refused("negotiate", err, scope)
            await send_json_error(send, 413 if err.code == 4503 else 400, err, cors)
            return "bad_request", ()
        order = order_transports(settings.transports, caps, failed)
        if not order:
            await send_json_error(send, 400, ProtocolError("no common transport", 4507), cors)
            return "no_transport", ()
        codec_name = choose_codec(("msgpack", "json"), codecs)
        try:
            issued = await host.issuer.issue(
                identity, namespace, codec_name, resume, since, client_ip(scope), interval
            )
        except Busy as exc:  # a session cap (server/admission.py)
            await gate.answer(scope, send, exc.refusal, cors)
            return "busy", ()
        except BrokerUnavailable as exc:
            # The client's stream positions could not be kept for the node that will
            # redeem its ticket: a session without them would skip events silently.
            error = ProtocolError(f"try again: {exc}", CloseCode.SHUTDOWN)
            await send_json_error(send, 503, error, cors)
            return "broker", ()
        observers = app.observers
        for name, reason in failures.items():
            observers.fallback(name, order[0], reason)
        if resume is not None and not issued.resumable:
            observers.resumed("unknown_session")
        urls = {"websocket": "/ws", "sse": "/sse", "longpoll": "/poll"}
        landing = land(scope, app.path)
        public = landing.public if landing is not None else app.path  # the mount's prefix too
        response = {
            "v": 1,
            "sid": issued.sid,
            "token": issued.token,
            "ticket": issued.ticket,
            "codec": codec_name,
            "resumable": issued.resumable,
            "transports": [
                {"name": t, "url": public + urls[t], "codec": "json" if t == "sse" else codec_name}
                for t in order
            ],
            "send_url": public + "/send",
            **settings.timings_ms(),
            "ping_interval": int(interval * 1000),  # what the client asked for, bounded
            "max_frame_size": settings.max_frame_size,
            "max_batch": settings.max_batch,
            "flood_rate": settings.flood_rate,
            "flood_burst": settings.flood_burst,
            "rx": settings.client_rx().to_wire(),  # the clients' receipt rule (section 6.4)
        }
        if "websocket" in order:
            # This server takes resume{token, last, auth} as a WebSocket's first frame: the
            # client's next resume may skip negotiate (server/wsresume.py).
            response["ws_resume"] = True
        if interval != settings.ping_interval:  # polls are held for it too
            response["poll_window"] = int(poll_hold(settings, interval) * 1000)
        expires_in = expires_in_ms(identity)
        if expires_in is not None:
            response["expires_in"] = expires_in  # when to refresh in-band (section 11.4)
        await json_response(send, 200, response, cors)
        return "ok", tuple(order)


async def json_response(
    send: Send, status: int, payload: dict[str, Any], extra: list[tuple[bytes, bytes]]
) -> None:
    """Answer with ``payload`` as JSON (never cached)."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _str(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value:
        raise RemoteProtocolError(f"{key} must be a non-empty string")
    return value


def _position(value: Any) -> tuple[str, int] | None:
    """A stream position ``[epoch, offset]`` from negotiate (``user_since``)."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], str)
        or len(value[0]) > 100
        or type(value[1]) is not int
        or not 0 <= value[1] < UINT_LIMIT
    ):
        raise RemoteProtocolError("user_since must be [epoch, offset]")
    return value[0], value[1]


_MAX_SINCE = 1000  # stream positions in one negotiate (the body is at most 64 KB anyway)


def _positions(value: Any) -> dict[str, tuple[str, int]]:
    """The stream positions a client holds, from negotiate (``since``): a list of
    ``[stream, epoch, offset]``."""
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) > _MAX_SINCE:
        raise RemoteProtocolError(f"since must be a list of at most {_MAX_SINCE} positions")
    out: dict[str, tuple[str, int]] = {}
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not isinstance(item[0], str)
            or not 0 < len(item[0]) <= 1000
            or not isinstance(item[1], str)
            or len(item[1]) > 100
            or type(item[2]) is not int
            or not 0 <= item[2] < UINT_LIMIT
        ):
            raise RemoteProtocolError("since must hold [stream, epoch, offset] positions")
        out[item[0]] = (item[1], item[2])
    return out


def _strs(body: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RemoteProtocolError(f"{key} must be a list of strings")
    return tuple(value)


def _failures(value: Any) -> dict[str, str]:
    """Why transports failed since the client's previous negotiate (``failures``):
    ``{transport: reason}``. Unknown transports are ignored (as in ``transports``); a
    reason outside :data:`FAILURE_REASONS` counts as ``other``."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > len(TRANSPORTS) * 2:
        raise RemoteProtocolError("failures must be an object of at most 6 entries")
    out: dict[str, str] = {}
    for name, reason in value.items():
        if not isinstance(reason, str) or not _REASON.fullmatch(reason):
            raise RemoteProtocolError("failures must map transports to reasons ([a-z_]{1,32})")
        if name in TRANSPORTS:
            out[name] = reason if reason in FAILURE_REASONS else "other"
    return out

