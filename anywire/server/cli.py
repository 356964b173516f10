"""Command line: ``anywire serve MODULE:ATTR``, ``anywire demo``, ``anywire bench`` and
``anywire chaos``.

``serve`` and ``demo`` run uvicorn with the sans-I/O WebSocket implementation. The server
subclass drains anywire *before* uvicorn waits for open connections: uvicorn would
otherwise wait for SSE streams and held polls forever (or cut them with 500s), and only
then run lifespan shutdown.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from typing import Any

import uvicorn

from .. import __version__
from ..clihelp import HelpFormatter
from ..core.settings import Settings
from ..redis_connect import parse as parse_redis_url
from .apikeys import parse_keys
from .app import Anywire
from .auth import check_secret
from .cliopts import (
    LOG_LEVELS,
    add_deflate_options,
    add_heartbeat_options,
    add_http_limit_options,
    add_log_options,
    apply_deflate,
    apply_heartbeat,
    http_limit_args,
    http_limits,
    http_options,
    log_args,
    setup_logs,
    wanted_deflate,
)
from .doctor import enable_doctor
from .httplimits import HttpLimits
from .logs import scrub_uvicorn, uvicorn_log_config
from .tenure import Tenure
from .workers import BACKLOG, run_workers
from .wsprotocol import metered_protocol

__all__ = [
    "add_http_limit_options",
    "http_limit_args",
    "http_limits",
    "http_options",
    "log_args",
    "main",
]

DESCRIPTION = """Real-time messaging over WebSocket, SSE and long-polling.

    anywire serve chat:aw --port 8000      # serve an Anywire object or a Litestar app
    anywire demo                           # the chat demo on http://127.0.0.1:8000/
    anywire doctor http://host:8000        # which transports work from where you sit
    anywire conformance --port 9100        # test a client of yours (docs/clients.md)
    anywire COMMAND -h                     # the options of one command"""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, anywire: Anywire | None) -> None:
        super().__init__(config)
        self.anywire = anywire

    async def shutdown(self, sockets: Any = None) -> None:
        if self.anywire is not None:
            await self.anywire.stop()
        await super().shutdown(sockets)


class _StuckConnections(logging.Filter):
    """uvicorn reports connections it could not close gracefully within its shutdown
    timeout as an ERROR, even when no task was left to cancel: then they are only clients
    that stopped reading (their sessions were drained already). A warning says so."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Cancel 0 running task(s)"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = (
                "anywire: connections of clients that stopped reading were cut at "
                "shutdown (their sessions had been drained)"
            )
            record.args = ()
        return True


def find_anywire(app: Any) -> Anywire | None:
    """The Anywire instance behind ``app`` (itself, or a Litestar app's plugin)."""
    if isinstance(app, Anywire):
        return app
    if isinstance(getattr(app, "anywire", None), Anywire):
        return app.anywire  # type: ignore[no-any-return]
    plugins = getattr(getattr(app, "plugins", None), "init", None) or []
    for plugin in plugins:
        found = getattr(plugin, "anywire", None)
        if isinstance(found, Anywire):
            return found
    return None


def load(target: str) -> Any:
    """Import ``module:attribute``."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise SystemExit(f"expected MODULE:ATTR, got {target!r}")
    sys.path.insert(0, ".")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SystemExit(f"{module_name} has no attribute {attr!r}") from None


def config(
    app: Any,
    host: str,
    port: int,
    log_level: str,
    max_size: int,
    fd: int | None = None,
    limits: HttpLimits | None = None,
    settings: Settings | None = None,
    log_format: str = "text",
    backlog: int = BACKLOG,
) -> uvicorn.Config:
    """uvicorn settings anywire relies on (with ``settings``, WebSocket pings and pongs
    are charged to the flood budget: :mod:`.wsprotocol`, and permessage-deflate is
    negotiated when ``settings.ws_deflate`` asks for it)."""
    return uvicorn.Config(
        app,
        **http_options(limits or HttpLimits()),
        host=host,
        port=port,
        fd=fd,
        backlog=backlog,
        ws="websockets-sansio" if settings is None else metered_protocol(settings),
        ws_max_size=max_size,
        # Off unless asked for: it costs memory per connection and CPU per recipient.
        ws_per_message_deflate=settings is not None and settings.ws_deflate,
        # Our own pings detect dead peers and pass proxies; uvicorn's are redundant.
        ws_ping_interval=None,
        lifespan="on",
        log_level=log_level,
        log_config=uvicorn_log_config(log_format),
        # anywire drains itself first (Settings.shutdown_timeout); this only bounds what
        # uvicorn waits for afterwards, which should be nothing.
        timeout_graceful_shutdown=1,
    )


def run(
    app: Any,
    host: str,
    port: int,
    log_level: str = "info",
    fd: int | None = None,
    limits: HttpLimits | None = None,
    log_format: str = "text",
    backlog: int = BACKLOG,
) -> None:
    """Serve ``app`` in this process with graceful anywire shutdown (``log_format``:
    :mod:`.logs`; ``backlog``: the listening socket's accept queue, :data:`BACKLOG`)."""
    aw = find_anywire(app)
    max_size = 4 * (aw.settings.max_frame_size if aw else 64 * 1024)
    settings = aw.settings if aw else None
    uv_config = config(
        app, host, port, log_level, max_size, fd, limits, settings, log_format, backlog
    )
    server = _Server(uv_config, aw)
    logging.getLogger("uvicorn.error").addFilter(_StuckConnections())
    scrub_uvicorn()  # no ticket or session token from a query string in the access log
    # Everything imported and built so far lives as long as the process: move it out of
    # the collector's sight, so a full collection scans what connections create, not
    # every module of the stack (it paused the loop for 30-50 ms at a time otherwise).
    gc.collect()
    gc.freeze()
    # And what connections build later, once it has survived a full collection.
    Tenure().install()
    server.run()




def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``anywire`` command."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["bench"]:  # its own parser: anywire.bench.cli
        from ..bench.cli import main as bench_main

        raise SystemExit(bench_main(args_in[1:]))
    if args_in[:1] == ["chaos"]:  # its own parser: anywire.chaos.cli
        from ..chaos.cli import main as chaos_main

        raise SystemExit(chaos_main(args_in[1:]))
    if args_in[:1] == ["conformance"]:  # its own parser: anywire.conformance.cli
        from ..conformance.cli import main as conformance_main

        raise SystemExit(conformance_main(args_in[1:]))
    if args_in[:1] == ["doctor"]:  # its own parser: anywire.doctor.cli
        from ..doctor.cli import main as doctor_main

        raise SystemExit(doctor_main(args_in[1:]))
    parser = argparse.ArgumentParser(
        prog="anywire", description=DESCRIPTION, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"anywire {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run an application (Anywire or Litestar app) under uvicorn",
        description="Run an application under uvicorn with anywire's graceful drain.",
        formatter_class=HelpFormatter,
    )
    serve.add_argument("target", help="MODULE:ATTR of an Anywire object or a Litestar app")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--workers", type=int, default=1, help="node processes on this port (needs --redis)"
    )
    serve.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument(
        "--backlog",
        type=int,
        default=BACKLOG,
        metavar="N",
        help="connections the kernel queues before the server accepts them (capped by "
        "net.core.somaxconn; a longer one showed no gain in a reconnect storm: "
        "docs/perf/storm-round3.md)",
    )
    serve.add_argument(
        "--log-level", default="info", type=str.lower, choices=LOG_LEVELS, help="log level"
    )
    add_log_options(serve)
    add_http_limit_options(serve)
    add_heartbeat_options(serve)
    add_deflate_options(serve)
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="share sessions' fan-out, history and presence through Redis "
        "(redis://host:port/0, rediss:// for TLS, redis+sentinel://host:port,.../service, "
        "redis+cluster://host:port,...); every node needs the same ANYWIRE_SECRET",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a Host this server answers to (repeatable; '.example.com' for a domain and "
        "its subdomains); adds to Settings.allowed_hosts (docs/protocol.md section 11.5)",
    )
    serve.add_argument(
        "--doctor", action="store_true", help="serve the transport doctor (docs/doctor.md)"
    )
    serve.add_argument(
        "--metrics",
        choices=("json", "prometheus"),
        help="what /anywire/metrics answers (default: json; prometheus needs "
        "anywire[metrics]; with --workers, one scrape sums every worker)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="also serve the Prometheus metrics on this port (implies --metrics prometheus)",
    )
    serve.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="turn the admin view on ({path}/admin, docs/admin.md); better set "
        "ANYWIRE_ADMIN_TOKEN instead: a command line is visible to other local users",
    )
    serve.add_argument(
        "--api-key",
        metavar="KEY",
        action="append",
        help="turn the server HTTP API on ({path}/publish, docs/publish-api.md); repeat "
        "for several keys valid at once (rotation); better set ANYWIRE_API_KEY (keys "
        "comma-separated) instead: a command line is visible to other local users",
    )
    sub.add_parser("doctor", help="probe which transports work from here (anywire doctor -h)")
    sub.add_parser("conformance", help="test a client against scripted scenarios (-h)")
    sub.add_parser("bench", help="measure throughput, latency and memory (anywire bench -h)")
    sub.add_parser("chaos", help="check the delivery guarantee under faults (anywire chaos -h)")
    demo = sub.add_parser(
        "demo",
        help="run the chat demo on the in-memory broker",
        description="Run the chat demo (anonymous users, in-memory broker).",
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on")
    demo.add_argument(
        "--log-level", default="info", type=str.lower, choices=LOG_LEVELS, help="log level"
    )
    args = parser.parse_args(argv)
    setup_logs(args)
    if args.command == "demo":
        from .demo import make_app

        print(f"anywire demo on http://{args.host}:{args.port}/", flush=True)
        run(make_app(), args.host, args.port, args.log_level)
        return
    if args.admin_token:
        # Through the environment: the app object reads it when it is built, in this
        # process and in every worker.
        try:
            os.environ["ANYWIRE_ADMIN_TOKEN"] = check_secret(args.admin_token, "admin_token")
        except ValueError as exc:
            parser.error(str(exc))
    if args.api_key:
        try:
            os.environ["ANYWIRE_API_KEY"] = ",".join(parse_keys(args.api_key))
        except ValueError as exc:
            parser.error(str(exc))
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.redis:
        try:
            parse_redis_url(args.redis)  # before any worker starts: one clear error
        except ValueError as exc:
            parser.error(f"--redis: {exc}")
    try:
        deflate = wanted_deflate(args)  # a bad ANYWIRE_WS_DEFLATE is refused here, once
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers > 1:
        # Each worker is a node with its own sessions: without a shared broker a ticket
        # or a poll landing on the wrong worker would be refused.
        if not args.redis:
            parser.error("--workers > 1 needs --redis (workers are nodes sharing Redis)")
        if not os.environ.get("ANYWIRE_SECRET"):
            parser.error("--workers > 1 needs a shared secret: set ANYWIRE_SECRET")
        sys.exit(run_workers(args))
    app = load(args.target)
    if args.allowed_host:
        from .hosts import allow_hosts  # (here: keeps this module's imports as they were)

        hosted = find_anywire(app)
        if hosted is None:
            parser.error(f"{args.target} holds no Anywire instance for --allowed-host")
        allow_hosts(hosted, args.allowed_host)
    if args.max_ping_interval is not None:
        beating = find_anywire(app)
        if beating is None:
            parser.error(f"{args.target} holds no Anywire instance for --max-ping-interval")
        try:
            apply_heartbeat(beating, args)
        except ValueError as exc:
            parser.error(f"--max-ping-interval: {exc}")
    if deflate is not None:
        deflating = find_anywire(app)
        if deflating is None:
            parser.error(
                f"{args.target} holds no Anywire instance for --ws-deflate "
                "(or ANYWIRE_WS_DEFLATE)"
            )
        apply_deflate(deflating, deflate)
    if args.doctor:
        doctored = find_anywire(app)
        if doctored is None:
            parser.error(f"{args.target} holds no Anywire instance for --doctor")
        enable_doctor(doctored)
    if args.redis:
        aw = find_anywire(app)
        if aw is None:
            parser.error(f"{args.target} holds no Anywire instance to connect to Redis")
        try:
            aw.use_redis(args.redis)
        except ValueError as exc:
            parser.error(str(exc))
    if args.metrics or args.metrics_port is not None:
        aw = find_anywire(app)
        if aw is None:
            parser.error(f"{args.target} holds no Anywire instance for --metrics")
        if args.metrics_port is not None:
            aw.metrics.serve_on(args.host, args.metrics_port)
        elif args.metrics == "prometheus":
            aw.metrics.use_prometheus()
    run(
        app, args.host, args.port, args.log_level, args.fd, http_limits(args), args.log_format,
        args.backlog,
    )  # fmt: skip


if __name__ == "__main__":
    main()
