"""Prometheus exposition of what the realtime layer does (``pip install anywire[metrics]``).

:class:`PrometheusMetrics` is an :class:`~.observe.Observer`: the events it hears
(negotiations, fallbacks, connections, resumes, refusals, ack round trips, sampled
delivery latency) update ``prometheus_client`` counters and histograms; none of them is
on the per-frame path. The hot-path figures (frames and bytes per transport, kept as
plain integers by :mod:`anywire.transports.traffic`) and the node's live counts
(sessions, rooms, the broker's counters) are copied into their metrics by :meth:`sync`,
which runs when a scrape asks: the delivery path never calls into ``prometheus_client``.

Several worker processes (``anywire serve --workers N``) use ``prometheus_client``'s
multiprocess mode: the command sets ``PROMETHEUS_MULTIPROC_DIR`` to a directory of its
own for the run, every worker writes its metrics there (and syncs its plain counters
into them once a second), and a scrape of any worker, or of the ``--metrics-port``
served by the parent, sums them all. Gauges sum over live workers (``livesum``; the
broker's state is the worst of them, ``livemin``); a worker that exits has its gauges
dropped (``mark_process_dead``). See docs/operations.md.

Label values are bounded: transports, outcomes, reasons and close-code classes are
fixed sets, a namespace is labelled only if the application registered handlers in it
(``other`` otherwise), and no user, room or session is ever a label.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.registry import Collector

from .observe import Connection, Observer
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .app import Anywire

__all__ = ["CONTENT_TYPE", "PrometheusMetrics", "WorkersMetrics", "multiprocess_dir"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

SYNC_PERIOD = 1.0
"""Seconds between two copies of a worker's plain counters into the shared files
(multiprocess mode only: a single process copies them at each scrape)."""

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LIFETIMES = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
_REASON = re.compile(r"[a-z_]{1,32}")

# The node's live counts (host.stats() and friends) exposed as gauges: JSON key -> help.
_LIVE = {
    "sessions": "Sessions on this node (attached or within their resume window).",
    "rooms": "Rooms with at least one member on this node.",
    "room_entries": "Room memberships on this node.",
    "users": "Distinct users with a session on this node.",
    "pending_acks": "Server-to-client calls waiting for their ack.",
    "pending_tickets": "Connection tickets issued and not yet redeemed.",
    "tombstones": "Sessions ended for good, remembered for late requests.",
    "session_tasks": "Handler tasks running for sessions.",
    "sessions_short_ping": "Sessions granted a shorter ping interval (idle cuts).",
    "sessions_long_ping": "Sessions granted a longer ping interval (battery profile).",
    "admission_sessions": "Sessions counted by admission control.",
    "admission_held": "Session slots held by unredeemed tickets.",
    "admission_buckets": "Per-IP negotiate rate buckets.",
    "broker_streams": "Streams whose history this node's broker tracks.",
    "broker_channels": "Stream channels this node is subscribed to (interest routing).",
}
# Plain counters copied into _total counters: (family, help, where it is read).
_COUNTS = {
    "protocol_errors": "Client protocol errors (invalid frames, floods).",
    "broker_published": "Envelopes published through the broker by this node.",
    "broker_pipelines": "Redis pipelines the node's publishes went in (published/pipelines: "
    "the mean pipeline size).",
    "broker_received": "Envelopes received from the broker.",
    "broker_gap_fills": "Envelopes recovered from stream history after a gap (Redis).",
    "broker_lost": "Envelopes the broker found missing from history ($lost sent).",
    "broker_reconnects": "Reconnections of the broker's subscription (Redis).",
    "forwarded_in": "Requests forwarded here by other nodes (Redis).",
    "forwarded_out": "Requests forwarded to the node owning the session (Redis).",
}
_TRAFFIC = {
    "frames_in": ("received_frames", "Protocol frames received, per transport."),
    "frames_out": ("sent_frames", "Protocol frames sent, per transport."),
    "bytes_in": ("received_bytes", "Bytes of message bodies received, per transport."),
    "bytes_out": ("sent_bytes", "Bytes of message bodies sent, per transport."),
    "flood_refusals": ("flood_refusals", "Client input refused for flood, per transport."),
}


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, if it is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def code_class(code: int) -> str:
    """A close code's class, a bounded label: ``1xxx`` (WebSocket's own: 1000 normal,
    1006 gone without a close), ``40xx`` (reconnect) or ``45xx`` (terminal)."""
    if code < 4000:
        return "1xxx"
    return "40xx" if code < 4500 else "45xx"


class _SyncFirst(Collector):
    """Registered first: copies the plain counters into their metrics before the
    registry collects them (a scrape of the in-process registry is then exact)."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync

    def describe(self) -> Iterable[Metric]:
        return ()  # (no families of its own; and no sync when registered)

    def collect(self) -> Iterable[Metric]:
        self._sync()
        return ()


class PrometheusMetrics(Observer):
    """The Prometheus metrics of one :class:`~anywire.server.app.Anywire` (a listener)."""

    def __init__(self, app: Anywire) -> None:
        self.app = app
        self.multiprocess = multiprocess_dir()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_SyncFirst(self.sync))
        self._synced: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"anywire_{name}", doc, labels, registry=r)

        def gauge(
            name: str, doc: str, labels: tuple[str, ...] = (), mode: Any = "livesum"
        ) -> Gauge:
            return Gauge(f"anywire_{name}", doc, labels, registry=r, multiprocess_mode=mode)

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            return Histogram(f"anywire_{name}", doc, labels, registry=r, buckets=buckets)

        self.connections = gauge(
            "connections", "Live connections, per transport and namespace.",
            ("transport", "namespace"),
        )  # fmt: skip
        self.opened = counter(
            "connections_opened", "Connections attached to a session (fresh or resumed).",
            ("transport", "namespace", "resumed"),
        )  # fmt: skip
        self.closed = counter(
            "connections_closed", "Connections ended, per transport and close-code class.",
            ("transport", "code_class"),
        )  # fmt: skip
        self.lifetime = histogram(
            "connection_duration_seconds", "How long connections lived.", _LIFETIMES,
            ("transport",),
        )  # fmt: skip
        self.negotiations = counter("negotiations", "Negotiate answers, per outcome.", ("outcome",))
        self.fallbacks = counter(
            "fallbacks", "Clients that moved off a transport, as they reported it.",
            ("from", "to", "reason"),
        )  # fmt: skip
        self.resumes = counter("resumes", "Resumes asked for, per outcome.", ("outcome",))
        self.lost_ranges = counter("lost_ranges", "$lost ranges sent to clients.")
        self.undelivered_hooks = counter(
            "undelivered_hooks",
            "on_undelivered outcomes: called, failed (raised), duplicate (another node's).",
            ("outcome",),
        )
        self.lost_events = counter("lost_events", "Events announced lost (bounded ranges).")
        self.auth_failures = counter(
            "auth_failures", "Credentials refused, per reason and where.", ("reason", "where")
        )
        self.closes = counter(
            "closes", "Connections closed for flood (4008) or as slow consumers (4002).",
            ("transport", "reason"),
        )  # fmt: skip
        self.ack_rtt = histogram(
            "ack_round_trip_seconds", "Server-to-client calls: call to ack.", _SECONDS
        )
        self.ack_timeouts = counter("ack_timeouts", "Server-to-client calls that timed out.")
        self.latency = histogram(
            "delivery_latency_seconds",
            "Publish to queued for the connections' writers on this node (1 in 16 sampled).",
            _SECONDS,
        )
        self.broker_up = gauge(
            "broker_up", "1 when the broker is connected (the worst of all workers).",
            mode="livemin",
        )  # fmt: skip
        self.broker_changes = counter(
            "broker_state_changes", "Broker connection state changes, per new state.", ("state",)
        )
        self.traffic = {
            key: counter(name, doc, ("transport",)) for key, (name, doc) in _TRAFFIC.items()
        }
        self.live = {key: gauge(key, doc) for key, doc in _LIVE.items()}
        self.counts = {key: counter(key, doc) for key, doc in _COUNTS.items()}

    # -- exposition -------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The text exposition: this process's registry, or every worker's (multiprocess)."""
        if self.multiprocess is None:
            return generate_latest(self.registry)
        self.sync()
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, self.multiprocess)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def start(self) -> None:
        """Begin syncing once a second (multiprocess mode: other workers' scrapes read
        this worker's files)."""
        if self.multiprocess is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sync_loop())

    async def stop(self) -> None:
        """Stop syncing; a worker that ends drops its live gauges from the sums."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self.multiprocess is not None:
            self.sync()
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess)  # type: ignore[no-untyped-call]

    async def _sync_loop(self) -> None:
        while True:
            self.sync()
            forget_dead_workers(self.multiprocess)
            await asyncio.sleep(SYNC_PERIOD)

    # -- plain counters -> metrics ----------------------------------------------------------
    def sync(self) -> None:
        """Copy the node's plain counters and live counts into their metrics."""
        app = self.app
        endpoints = (("websocket", app.websocket), ("sse", app.sse), ("longpoll", app.longpoll))
        for name, endpoint in endpoints:
            snapshot = endpoint.traffic.snapshot()
            for key, metric in self.traffic.items():
                self._advance(metric.labels(name), (key, name), snapshot[key])
        stats = app.metrics.stats()
        for key, live in self.live.items():
            live.set(stats.get(key, 0))
        counts = {
            "protocol_errors": stats.get("errors", 0),
            "forwarded_in": stats.get("forwarded_in", 0),
            "forwarded_out": stats.get("forwarded_out", 0),
        }
        broker = getattr(app.broker, "counters", {})
        for key, value in broker.items():
            counts["broker_gap_fills" if key == "filled" else f"broker_{key}"] = value
        for key, metric in self.counts.items():
            self._advance(metric, (key, ""), counts.get(key, 0))
        self.broker_up.set(1 if app.broker.state() == "ok" else 0)

    def _advance(self, metric: Any, key: tuple[str, str], value: float) -> None:
        last = self._synced.get(key, 0)
        if value > last:
            metric.inc(value - last)
        self._synced[key] = value

    # -- events -----------------------------------------------------------------------------
    def _namespace(self, ns: str) -> str:
        """A namespace as a label: only those the application handles (bounded)."""
        return ns if ns == "/" or ns in self.app.namespaces() else "other"

    def negotiated(self, outcome: str, transports: tuple[str, ...]) -> None:
        self.negotiations.labels(outcome).inc()

    def fallback(self, from_transport: str, to_transport: str, reason: str) -> None:
        self.fallbacks.labels(from_transport, to_transport, reason).inc()

    def connected(self, conn: Connection, resumed: bool) -> None:
        ns = self._namespace(conn.namespace)
        self.connections.labels(conn.transport, ns).inc()
        self.opened.labels(conn.transport, ns, "true" if resumed else "false").inc()

    def disconnected(
        self, conn: Connection, code: int, duration: float, frames_in: int, frames_out: int
    ) -> None:
        self.connections.labels(conn.transport, self._namespace(conn.namespace)).dec()
        self.closed.labels(conn.transport, code_class(code)).inc()
        self.lifetime.labels(conn.transport).observe(duration)

    def resumed(self, outcome: str) -> None:
        self.resumes.labels(outcome).inc()

    def lost(self, stream: str, count: int | None) -> None:
        self.lost_ranges.inc()
        if count:
            self.lost_events.inc(count)

    def auth_failed(self, reason: str, where: str) -> None:
        reason = reason if _REASON.fullmatch(reason) else "other"
        self.auth_failures.labels(reason, where).inc()

    def closed_for(self, reason: str, conn: Connection) -> None:
        self.closes.labels(conn.transport, reason).inc()

    def ack_round_trip(self, seconds: float) -> None:
        self.ack_rtt.observe(seconds)

    def ack_timeout(self) -> None:
        self.ack_timeouts.inc()

    def delivery_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def broker_state(self, state: str) -> None:
        self.broker_changes.labels(state).inc()

    def undelivered(self, outcome: str, namespace: str, user: str, event: str) -> None:
        self.undelivered_hooks.labels(outcome).inc()


def forget_dead_workers(directory: str | None) -> None:
    """Drop the live gauges of workers that died without saying so (killed): any worker
    may do it, so the sums stay right without the parent's help."""
    if directory is None:
        return
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            match = re.fullmatch(r"gauge_live\w*_(\d+)\.db", name)
            if match:
                pids.add(int(match.group(1)))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, someone else's


class WorkersMetrics:
    """The parent's side of multiprocess mode (``anywire serve --workers N``): a
    directory for the workers' metric files (``PROMETHEUS_MULTIPROC_DIR``, set for the
    workers; a fresh temporary one per run unless already set), the ``--metrics-port``
    that serves their sum, and the cleanup of a worker that ends.

    Create it before the workers start: they inherit the environment."""

    def __init__(self, host: str, port: int | None) -> None:
        given = multiprocess_dir()
        self.directory = given or tempfile.mkdtemp(prefix="anywire-metrics-")
        self._created = given is None
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.directory
        self._server: Any = None
        if port is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, self.directory)  # type: ignore[no-untyped-call]
            self._server, _ = start_http_server(port, addr=host, registry=registry)

    def worker_ended(self, pid: int) -> None:
        """Worker ``pid`` exited (cleanly or not): its live gauges leave the sums."""
        multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop serving; remove the directory if this run made it."""
        if self._server is not None:
            self._server.shutdown()
        if self._created:
            shutil.rmtree(self.directory, ignore_errors=True)
