"""Command line: ``anywire serve MODULE:ATTR``, ``anywire demo`` and ``anywire bench``.

Both run uvicorn with the sans-I/O WebSocket implementation. The server subclass drains
anywire *before* uvicorn waits for open connections: uvicorn would otherwise wait for
SSE streams and held polls forever (or cut them with 500s), and only then run lifespan
shutdown.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

import uvicorn

from .app import Anywire

__all__ = ["main"]


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, anywire: Anywire | None) -> None:
        super().__init__(config)
        self.anywire = anywire

    async def shutdown(self, sockets: Any = None) -> None:
        if self.anywire is not None:
            await self.anywire.stop()
        await super().shutdown(sockets)


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


def config(app: Any, host: str, port: int, log_level: str, max_size: int) -> uvicorn.Config:
    """uvicorn settings anywire relies on."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=max_size,
        ws_per_message_deflate=False,
        # Our own pings detect dead peers and pass proxies; uvicorn's are redundant.
        ws_ping_interval=None,
        lifespan="on",
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )


def run(app: Any, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` in this process with graceful anywire shutdown."""
    aw = find_anywire(app)
    max_size = 4 * (aw.settings.max_frame_size if aw else 64 * 1024)
    server = _Server(config(app, host, port, log_level, max_size), aw)
    server.run()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``anywire`` command."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["bench"]:  # its own parser: anywire.bench.cli
        from ..bench.cli import main as bench_main

        raise SystemExit(bench_main(args_in[1:]))
    parser = argparse.ArgumentParser(prog="anywire", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run an application (Anywire or Litestar app)")
    serve.add_argument("target", help="MODULE:ATTR of an Anywire object or a Litestar app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    sub.add_parser("bench", help="measure throughput, latency and memory (anywire bench -h)")
    demo = sub.add_parser("demo", help="run the chat demo on the in-memory broker")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    if args.command == "demo":
        from .demo import make_app

        print(f"anywire demo on http://{args.host}:{args.port}/", flush=True)
        run(make_app(), args.host, args.port, args.log_level)
        return
    if args.workers != 1:
        # Each worker process would hold its own sessions and its own signing secret, so
        # a ticket issued by one worker would be refused by the next: refuse instead.
        parser.error("--workers > 1 needs a shared broker (Redis), not available yet")
    run(load(args.target), args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
