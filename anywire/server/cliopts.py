"""The option groups of ``anywire serve`` that a worker process must get again: the HTTP
limits (:mod:`.httplimits`), the log output (:mod:`.logs`, :mod:`.connlog`) and the
heartbeat ceiling (``Settings.max_ping_interval``, the battery profile) and WebSocket
permessage-deflate (``Settings.ws_deflate``). Each
group has its parser options, the value the command line asks for, and the arguments
that hand it on to a ``--workers`` process (:mod:`.workers`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING, Any

from .httpdirect import protocol_class
from .httplimits import HttpLimits
from .logs import configure

if TYPE_CHECKING:
    from .app import Anywire

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

__all__ = [
    "WS_DEFLATE_ENV",
    "add_deflate_options",
    "add_heartbeat_options",
    "add_http_limit_options",
    "add_log_options",
    "apply_deflate",
    "apply_heartbeat",
    "deflate_args",
    "heartbeat_args",
    "http_limit_args",
    "http_limits",
    "http_options",
    "log_args",
    "setup_logs",
    "wanted_deflate",
]


# -- HTTP limits (anywire.server.httplimits) ---------------------------------------------
def http_options(limits: HttpLimits) -> dict[str, Any]:
    """uvicorn options of the HTTP limits: httptools (about 300 us per negotiate against
    h11's 510) with the limits added, and the keep-alive idle time."""
    return {"http": protocol_class(limits), "timeout_keep_alive": limits.keep_alive}


def add_http_limit_options(parser: argparse.ArgumentParser) -> None:
    """``--max-request-line``, ``--max-header-size``, ``--header-timeout``,
    ``--body-timeout``, ``--keep-alive`` (defaults of :class:`HttpLimits`)."""
    d = HttpLimits()
    group = parser.add_argument_group("HTTP limits (docs/protocol.md section 8.7)")
    group.add_argument(
        "--max-request-line",
        type=int,
        default=d.max_request_line,
        metavar="BYTES",
        help="longest request line; 414 past it",
    )
    group.add_argument(
        "--max-header-size",
        type=int,
        default=d.max_header_size,
        metavar="BYTES",
        help="most bytes of request line and headers; 431",
    )
    group.add_argument(
        "--header-timeout",
        type=float,
        default=d.header_timeout,
        metavar="S",
        help="time to receive a request head; 408 past it",
    )
    group.add_argument(
        "--body-timeout",
        type=float,
        default=d.body_timeout,
        metavar="S",
        help="time to receive a body after its head; 408",
    )
    group.add_argument(
        "--keep-alive",
        type=float,
        default=d.keep_alive,
        metavar="S",
        help="idle time allowed between requests",
    )


def http_limits(args: argparse.Namespace) -> HttpLimits:
    """The :class:`HttpLimits` the command line asks for."""
    if (
        min(
            args.max_request_line,
            args.max_header_size,
            args.header_timeout,
            args.body_timeout,
            args.keep_alive,
        )
        <= 0
    ):
        raise SystemExit("anywire serve: every HTTP limit must be positive")
    return HttpLimits(
        args.max_request_line,
        args.max_header_size,
        args.header_timeout,
        args.body_timeout,
        args.keep_alive,
    )


def http_limit_args(limits: HttpLimits) -> list[str]:
    """The command-line options that give a worker process ``limits``."""
    return [
        "--max-request-line",
        str(limits.max_request_line),
        "--max-header-size",
        str(limits.max_header_size),
        "--header-timeout",
        str(limits.header_timeout),
        "--body-timeout",
        str(limits.body_timeout),
        "--keep-alive",
        str(limits.keep_alive),
    ]


# -- end of HTTP limits -----------------------------------------------------------------


# -- log output (anywire.server.logs, anywire.server.connlog) ---------------------------
def add_log_options(parser: argparse.ArgumentParser) -> None:
    """``--log-format`` and ``--conn-log-level``."""
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object per line",
    )
    parser.add_argument(
        "--conn-log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=None,
        help="level of the connection log (logger anywire.conn): "
        "warning keeps refusals and flood closes only (default: --log-level)",
    )


def setup_logs(args: argparse.Namespace) -> None:
    """Install the log handler the command line asks for."""
    fmt, conn_level = getattr(args, "log_format", "text"), getattr(args, "conn_log_level", None)
    try:
        configure(fmt, args.log_level.upper(), conn_level=conn_level)
    except ValueError as exc:
        raise SystemExit(f"anywire: {exc}") from None


def log_args(args: argparse.Namespace) -> list[str]:
    """The command-line options that give a worker process the same log output."""
    extra = ["--conn-log-level", args.conn_log_level] if args.conn_log_level else []
    return ["--log-level", args.log_level, "--log-format", args.log_format, *extra]


# -- end of log output ------------------------------------------------------------------


# -- heartbeat ceiling (Settings.max_ping_interval, core/pinginterval.py) ----------------
MAX_PING_ENV = "ANYWIRE_MAX_PING_INTERVAL"
"""The environment variable that stands for ``--max-ping-interval`` when it is not given."""


def _seconds(text: str) -> float:
    value = float(text)  # ValueError: argparse says "invalid _seconds value"
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def add_heartbeat_options(parser: argparse.ArgumentParser) -> None:
    """``--max-ping-interval`` (default: ``ANYWIRE_MAX_PING_INTERVAL``, else the app's
    own ``Settings.max_ping_interval``)."""
    parser.add_argument(
        "--max-ping-interval",
        type=_seconds,
        default=os.environ.get(MAX_PING_ENV) or None,
        metavar="SECONDS",
        help="longest heartbeat a client may ask for at negotiate (battery profile; "
        f"default: ${MAX_PING_ENV}, else the app's Settings; keep it below every proxy's "
        "idle timeout, docs/deployment.md)",
    )


def apply_heartbeat(aw: Anywire, args: argparse.Namespace) -> None:
    """Give ``aw`` the heartbeat ceiling the command line asks for (before it serves).

    Raises :class:`ValueError` when it is below the app's ``ping_interval``."""
    if args.max_ping_interval is None:
        return
    aw.settings = dataclasses.replace(aw.settings, max_ping_interval=args.max_ping_interval)
    aw.host.settings = aw.settings


def heartbeat_args(args: argparse.Namespace) -> list[str]:
    """The command-line options that give a worker process the same ceiling."""
    if args.max_ping_interval is None:
        return []
    return ["--max-ping-interval", repr(args.max_ping_interval)]


# -- end of heartbeat ceiling -----------------------------------------------------------


# -- WebSocket permessage-deflate (Settings.ws_deflate) ---------------------------------
WS_DEFLATE_ENV = "ANYWIRE_WS_DEFLATE"
"""The environment variable that stands for ``--ws-deflate`` / ``--no-ws-deflate`` when
neither is given: ``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``, ``no``, ``off``."""

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


def add_deflate_options(parser: argparse.ArgumentParser) -> None:
    """``--ws-deflate`` / ``--no-ws-deflate`` (default: ``ANYWIRE_WS_DEFLATE``, else the
    app's own ``Settings.ws_deflate``)."""
    parser.add_argument(
        "--ws-deflate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let WebSocket clients negotiate permessage-deflate: fewer bytes on the wire "
        "for text-heavy events, more CPU and memory per connection (default: "
        f"${WS_DEFLATE_ENV}, else the app's Settings, off; docs/benchmarks.md)",
    )


def wanted_deflate(args: argparse.Namespace, environ: dict[str, str] | None = None) -> bool | None:
    """What the command line (or else the environment) asks for; None: the app's own.

    Raises :class:`ValueError` for an environment value that is not a yes or a no."""
    if args.ws_deflate is not None:
        return bool(args.ws_deflate)
    raw = (os.environ if environ is None else environ).get(WS_DEFLATE_ENV)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value in _ON or value in _OFF:
        return value in _ON
    raise ValueError(f"{WS_DEFLATE_ENV}={raw!r}: expected 1/true/yes/on or 0/false/no/off")


def apply_deflate(aw: Anywire, wanted: bool) -> None:
    """Give ``aw`` the deflate setting the command line asks for (before it serves)."""
    aw.settings = dataclasses.replace(aw.settings, ws_deflate=wanted)
    aw.host.settings = aw.settings


def deflate_args(args: argparse.Namespace) -> list[str]:
    """The command-line options that give a worker process the same setting (the
    environment value resolved here, so a bad one is refused once, by the parent)."""
    wanted = wanted_deflate(args)
    if wanted is None:
        return []
    return ["--ws-deflate" if wanted else "--no-ws-deflate"]


# -- end of WebSocket permessage-deflate ------------------------------------------------
