"""``GET /anywire/metrics``: the node's figures, as JSON (default) or in the Prometheus
text format (``Anywire(metrics="prometheus")``, ``anywire serve --metrics prometheus``).

JSON is one object of counters and live counts of this process (what it always was);
with Prometheus on it stays available as ``?format=json``. The Prometheus side
(:mod:`.prometheus`) needs the optional dependency ``prometheus-client``
(``pip install anywire[metrics]``) and is imported only when asked for.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from ..transports.base import Receive, Scope, Send, query
from .broker_redis import RedisBroker
from .heartbeats import lengthened, shortened
from .negotiate import json_response

if TYPE_CHECKING:
    from .app import Anywire
    from .host import SessionHost
    from .prometheus import PrometheusMetrics

__all__ = ["FORMATS", "Metrics", "MetricsPort", "live_counts"]

FORMATS = ("json", "prometheus")
"""What ``/anywire/metrics`` can answer in (``metrics=`` of Anywire, ``--metrics``)."""


def live_counts(host: SessionHost) -> dict[str, int]:
    """The session host's live object counts and its counters (``host.stats()``)."""
    return {
        "sessions": len(host.sessions),
        "sockets": len(host.sockets),
        "rooms": len(host.rooms),
        "room_entries": host.rooms.entry_count(),
        "users": len(host.users),
        "session_tasks": sum(len(t) for t in host.tasks.values()),
        "background_tasks": len(host._background),
        "pending_acks": len(host.calls),
        "pending_tickets": len(host.issuer),
        "tombstones": len(host._tombstones),
        "asyncio_tasks": len(asyncio.all_tasks()),
        **host.counters,
    }


class Metrics:
    """The metrics endpoint of one :class:`~anywire.server.app.Anywire`.

    ``kind`` None reads the ``ANYWIRE_METRICS`` environment variable (how ``anywire
    serve --metrics`` reaches every worker), else ``json``."""

    def __init__(self, app: Anywire, kind: str | None = None) -> None:
        self.app = app
        self.prometheus: PrometheusMetrics | None = None
        self.port: MetricsPort | None = None
        """A separate port serving the exposition (:meth:`serve_on`)."""
        kind = kind or os.environ.get("ANYWIRE_METRICS") or "json"
        if kind not in FORMATS:
            raise ValueError(f"metrics must be one of {', '.join(FORMATS)}, not {kind!r}")
        if kind == "prometheus":
            self.use_prometheus()

    def use_prometheus(self) -> PrometheusMetrics:
        """Serve the Prometheus format from now on (register its listener once)."""
        if self.prometheus is None:
            try:
                from .prometheus import PrometheusMetrics
            except ImportError as exc:  # the optional dependency
                raise RuntimeError(
                    "Prometheus metrics need prometheus-client: pip install 'anywire[metrics]'"
                ) from exc
            self.prometheus = PrometheusMetrics(self.app)
            self.app.observe(self.prometheus)
        return self.prometheus

    def serve_on(self, host: str, port: int) -> None:
        """Serve the Prometheus exposition on ``host:port`` too, from app start to stop
        (one process; with workers, ``anywire serve`` serves it from the parent)."""
        self.use_prometheus()
        self.port = MetricsPort(self, host, port)

    async def start(self) -> None:
        """At app start: begin syncing (multiprocess) and listening (:meth:`serve_on`)."""
        if self.prometheus is not None:
            self.prometheus.start()
        if self.port is not None:
            await self.port.start()

    async def stop(self) -> None:
        """At app stop."""
        if self.port is not None:
            await self.port.stop()
        if self.prometheus is not None:
            await self.prometheus.stop()

    def stats(self) -> dict[str, Any]:
        """This process's counters and live counts (the JSON answer)."""
        app = self.app
        stats: dict[str, Any] = dict(app.host.stats())
        stats.update(app.host.issuer.gate.counts.counts())  # session slots, IP buckets
        stats["sessions_short_ping"] = shortened(app.host.sessions.values(), app.settings)
        stats["sessions_long_ping"] = lengthened(app.host.sessions.values(), app.settings)
        stats.update(app.undelivered.counts)  # on_undelivered outcomes
        if isinstance(app.broker, RedisBroker):
            stats.update({f"broker_{k}": v for k, v in app.broker.counters.items()})
            stats["broker_streams"] = app.broker.stream_count()
            stats["broker_channels"] = app.broker.channel_count()
        if app.cluster is not None:
            stats.update(app.cluster.counters)
        stats["frames_in"] = stats["frames_out"] = 0
        for name, endpoint in (("websocket", app.websocket), ("sse", app.sse),
                               ("longpoll", app.longpoll)):  # fmt: skip
            traffic = endpoint.traffic.snapshot()
            stats.update({f"{name}_{k}": v for k, v in traffic.items()})
            stats["frames_in"] += traffic["frames_in"]
            stats["frames_out"] += traffic["frames_out"]
        return stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.prometheus is None or query(scope).get("format") == "json":
            await json_response(send, 200, self.stats(), [])
            return
        await self.exposition(scope, receive, send)

    async def exposition(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The Prometheus text exposition, as an ASGI app of its own (mount it anywhere,
        e.g. in Litestar: ``asgi("/metrics", is_mount=True)(aw.metrics.exposition)``)."""
        if scope["type"] != "http":
            return
        prometheus = self.use_prometheus()
        from .prometheus import CONTENT_TYPE

        body = prometheus.exposition()
        headers = [(b"content-type", CONTENT_TYPE.encode()), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class MetricsPort:
    """A listening socket of its own that answers every request with the Prometheus
    exposition (``anywire serve --metrics-port N``, one process): served by the app's
    event loop, so a scrape reads the counters where they change, never from a thread."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (at app start)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._answer, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening (at app stop)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                await reader.readuntil(b"\r\n\r\n")  # any request: the exposition
            from .prometheus import CONTENT_TYPE

            body = self.metrics.use_prometheus().exposition()
            head = (
                f"HTTP/1.1 200 OK\r\ncontent-type: {CONTENT_TYPE}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
