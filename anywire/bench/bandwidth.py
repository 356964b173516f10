"""Bytes on the wire per delivery, and the server CPU each costs, per transport, codec,
permessage-deflate on or off and payload (a chat message, a small signal).

Each configuration gets a fresh server (:mod:`.chatapp`, pinned to CPU 0) and ``clients``
Python clients (:class:`~anywire.clients.python.Client`, in this process, pinned to CPU 1)
that reach it through a counting TCP proxy in this process. Once every client has
connected, the counters are zeroed and the server publishes ``events`` events to the
room at ``rate`` per second, one at a time (a chat's traffic: nothing to coalesce).
Measured until every client has every event:

* bytes per delivery, server to client (``down``) and client to server (``up``: the
  client's receipts), everything TCP carries: WebSocket framing, HTTP heads and chunking
  on SSE and long-poll, anywire's frame envelope;
* server CPU per delivery (user + system time of the server process over the run,
  divided by the deliveries), at this fixed offered load;
* server memory per connection after the run (RSS growth since before the clients
  came, divided by the clients): what deflate's per-connection state adds;
* delivery latency, p50 and p99: from the moment each event was due at the server (its
  schedule, on this machine's monotonic clock) to its arrival in a client's handler,
  the proxy hop and the client's decoding (and inflating) included;
* how many connections negotiated permessage-deflate (read in the 101 at the proxy).

Run as ``python -m anywire.bench.bandwidth [--quick] [--json]``; bench/compare.py runs
it as its bandwidth section.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..clients.python import Client
from .runner import Server, Target, raise_nofile

__all__ = ["Config", "CountingProxy", "configs", "main", "measure", "render"]


@dataclass(frozen=True)
class Config:
    """One line of the table."""

    transport: str
    codec: str
    deflate: bool
    kind: str

    @property
    def label(self) -> str:
        codec = "json" if self.transport == "sse" else self.codec  # SSE is JSON text
        return f"{self.transport} {codec}" + (" + deflate" if self.deflate else "")


def configs() -> list[Config]:
    """Every configuration measured: deflate applies to the WebSocket only (SSE and
    long-poll would need HTTP compression, which anywire does not do), and SSE is
    always JSON."""
    out = []
    for kind in ("chat", "small"):
        for codec in ("json", "msgpack"):
            for deflate in (False, True):
                out.append(Config("websocket", codec, deflate, kind))
        out.append(Config("sse", "json", False, kind))
        for codec in ("json", "msgpack"):
            out.append(Config("longpoll", codec, False, kind))
    return out


class CountingProxy:
    """127.0.0.1:``port`` -> 127.0.0.1:``upstream``, counting bytes each way."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.down = 0  # server -> client
        self.up = 0
        self.deflated = 0  # connections whose 101 agreed to permessage-deflate
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop accepting, cut what is still open and wait for every handler to end (a
        handler cancelled by the loop's shutdown makes asyncio print a traceback)."""
        if self._server is not None:
            self._server.close()
        for writer in self._open:
            writer.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def reset(self) -> None:
        self.down = self.up = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._open.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._open.add(up_writer)
        await asyncio.gather(
            self._pump(reader, up_writer, False),
            self._pump(up_reader, writer, True),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            w.transport.abort()
            self._open.discard(w)
        self._handlers.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, down: bool
    ) -> None:
        first = True
        while data := await reader.read(65536):
            if down:
                self.down += len(data)
                if first and data.startswith(b"HTTP/1.1 101"):
                    head = data.split(b"\r\n\r\n", 1)[0].lower()
                    self.deflated += b"permessage-deflate" in head
            else:
                self.up += len(data)
            first = False
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


def _target(deflate: bool) -> Target:
    def command(port: int) -> list[str]:
        cmd = [sys.executable, "-m", "anywire.bench.chatapp", "--port", str(port)]
        return cmd + (["--ws-deflate"] if deflate else [])

    return Target("anywire chat", "anywire", {}, command)


async def _run(
    server: Server, cfg: Config, clients: int, events: int, rate: float
) -> dict[str, Any]:
    proxy = CountingProxy(server.port)
    await proxy.start()
    done = asyncio.Event()
    counts = [0] * clients
    finished = 0
    socks: list[Client] = []
    due = [0.0] * events  # when each event was due at the server (monotonic clock)
    latencies: list[float] = []

    def counter(i: int) -> Any:
        def on_event(data: Any) -> None:
            nonlocal finished
            latencies.append(time.monotonic() - due[counts[i]])
            counts[i] += 1
            if counts[i] == events:
                finished += 1
                if finished == clients:
                    done.set()

        return on_event

    try:
        for i in range(clients):
            sock = Client(
                f"http://127.0.0.1:{proxy.port}",
                transports=(cfg.transport,),
                codec=cfg.codec,
                ws_deflate=cfg.deflate,
                race_after=None,
                connect_timeout=30.0,
                proxy=False,
            )
            sock.on("m")(counter(i))
            socks.append(sock)
        await asyncio.gather(*(s.connect() for s in socks))
        if any(s.transport != cfg.transport for s in socks):
            raise RuntimeError(f"a client connected on another transport than {cfg.transport}")
        await asyncio.sleep(0.5)  # the last receipts of the handshakes, then a clean count
        proxy.reset()
        cpu0, t0 = server.cpu_secs(), time.monotonic()
        query = f"/ctl/chat?kind={cfg.kind}&n={events}&rate={rate}"
        start = (await asyncio.to_thread(_post, server.url(query)))["start"]
        due[:] = [start + k / rate for k in range(events)]
        async with asyncio.timeout(events / rate + 60):
            await done.wait()
        await asyncio.sleep(0.3)  # the receipts of the last events
        cpu, wall = server.cpu_secs() - cpu0, time.monotonic() - t0
        down, up = proxy.down, proxy.up
        rss_after = server.rss_kb()
    finally:
        await asyncio.gather(*(s.close() for s in socks), return_exceptions=True)
        await proxy.close()
    deliveries = clients * events
    return {
        **asdict(cfg),
        "label": cfg.label,
        "clients": clients,
        "events": events,
        "rate": rate,
        "deliveries": deliveries,
        "down_bytes": down / deliveries,
        "up_bytes": up / deliveries,
        "server_cpu_us": cpu / deliveries * 1e6,
        "server_cpu_share": cpu / wall,
        "rss_after_kb": rss_after,
        "deflated_conns": proxy.deflated,
        "load_avg": os.getloadavg()[0],  # other work on this machine skews latency most
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _post(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as r:
        return dict(json.loads(r.read()))


def measure(
    cfg: Config, clients: int = 50, events: int = 300, rate: float = 20.0
) -> dict[str, Any]:
    """One configuration on a fresh server (pinned to CPU 0; this process to CPU 1)."""
    raise_nofile()
    before = os.sched_getaffinity(0)
    with contextlib.suppress(AttributeError, OSError):
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
    server = Server(_target(cfg.deflate), 0)
    try:
        time.sleep(0.3)
        rss_base = server.rss_kb()
        result = asyncio.run(_run(server, cfg, clients, events, rate))
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, before)  # a caller (bench/compare.py) goes on as it was
    result["kb_per_conn"] = (result.pop("rss_after_kb") - rss_base) / clients
    return result


def render(rows: list[dict[str, Any]]) -> str:
    """The markdown table of bandwidth results."""
    if not rows:
        return ""
    r0 = rows[0]
    out = [
        f"{r0['clients']} clients in one room, {r0['events']} events published one at a "
        f"time at {r0['rate']:.0f}/s (python -m anywire.bench.bandwidth); bytes counted "
        "at a TCP proxy, everything TCP carried per delivery; server CPU per delivery at "
        "that offered load; latency from when each event was due at the server to a "
        "client's handler (proxy hop and client decoding included); memory: server RSS "
        "growth per connection after the run. 1-minute load average during the run: "
        f"{min(r.get('load_avg', 0) for r in rows):.1f} to "
        f"{max(r.get('load_avg', 0) for r in rows):.1f} on {os.cpu_count()} cores.",
        "",
        "| payload | transport, codec | down B/delivery | up B/delivery | server CPU us/delivery "
        "| p50 / p99 ms | server KB/conn | deflate agreed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("failed"):
            out.append(f"| {r['kind']} | {r['label']} | failed: {r['failed'][:60]} | | | | | |")
            continue
        agreed = f"{r['deflated_conns']}/{r['clients']}" if r["transport"] == "websocket" else "n/a"
        out.append(
            f"| {r['kind']} | {r['label']} | {r['down_bytes']:.0f} | {r['up_bytes']:.0f} "
            f"| {r['server_cpu_us']:.1f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} "
            f"| {r['kb_per_conn']:.1f} | {agreed} |"
        )
    return "\n".join(out)


def run_all(clients: int, events: int, rate: float, only: str = "") -> list[dict[str, Any]]:
    """Every configuration (``only``: a substring of the labels to keep)."""
    rows = []
    for cfg in configs():
        if only and only not in f"{cfg.kind} {cfg.label}":
            continue
        print(f"== bandwidth: {cfg.kind}, {cfg.label}", file=sys.stderr, flush=True)
        try:
            row = measure(cfg, clients, events, rate)
        except Exception as exc:  # one broken configuration must not lose the table
            row = {**asdict(cfg), "label": cfg.label, "failed": repr(exc)}
        else:
            print(
                f"   down {row['down_bytes']:.0f} B up {row['up_bytes']:.0f} B "
                f"CPU {row['server_cpu_us']:.1f} us p50 {row['p50_ms']:.1f} ms "
                f"p99 {row['p99_ms']:.1f} ms {row['kb_per_conn']:.1f} KB/conn",
                file=sys.stderr,
                flush=True,
            )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--only", default="", help="keep labels containing this text")
    parser.add_argument("--quick", action="store_true", help="20 clients, 100 events")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.events = 20, 100
    rows = run_all(args.clients, args.events, args.rate, args.only)
    print(json.dumps(rows, indent=1) if args.json else render(rows))


if __name__ == "__main__":
    main()
