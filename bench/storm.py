"""Reconnect storm on one node: N WebSocket clients, a fan-out, then every connection
drops at once and each client comes back with jittered backoff and resumes.

    python3 bench/storm.py --clients 10000 --rate 2 --per-ip 100

What it reports (one JSON line, and a short table):

* ``resume_secs``: from the drop until every client has its ``hello`` again;
* ``recovered`` / ``not_recovered``: resumes answered ``recovered: true`` / ``false``;
* ``lost``: ``$lost`` events received; ``gaps`` / ``dups``: numbers of the fan-out a
  client missed or saw twice (each client must see every number published after it
  joined exactly once, in order: the invariant);
* ``gave_up``: clients that had not resumed by ``--deadline`` (must be 0);
* ``refused``: negotiate answers 429/503 during the storm (the clients waited them out);
* ``direct``: resumes over the WebSocket without negotiate (protocol section 2.2.1, what
  a client holding a WebSocket session does when the server's negotiate said
  ``ws_resume``), ``direct_fallback``: such attempts refused with 4007 that negotiated
  in the same attempt, ``direct_refused``: refused with ``retry_after`` (waited out);
  ``--no-ws-resume`` makes every resume negotiate first (the A/B);
* ``server_peak_rss_kb`` (VmHWM from /proc) and the RSS before the storm.

The server is anywire's bench app with anywire's *default* settings (``--defaults``:
resume window, admission limits, heartbeats), pinned to CPU 0; the clients run in this
process, pinned to CPU 1. Each client speaks the protocol itself (negotiate over HTTP, a
WebSocket with ``connect``/``resume``, ``rx`` receipts, ``pong``): a full
:class:`anywire.clients.python.Client` costs too much CPU to run 10,000 of them in one
process on this machine (docs/perf/storm.md has the figures). They back off with the Python
client's own policy (:func:`anywire.clients.python.backoff.backoff`, full jitter) and
honour ``Retry-After``. Clients are spread over source addresses 127.0.0.2, .3, ...
(``--per-ip`` clients each), so the per-address admission limits meet a realistic crowd
(one address per household or NAT) instead of 10,000 clients on one address.

The drop is done from the client side (every socket aborted at once: the server sees a
reset on every connection, as when a proxy or a link in between dies); ``--drop server``
makes the server close every connection with 4000 instead. Bounded: every wait has a
deadline, and the run stops at ``--deadline`` seconds after the drop whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import struct
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anywire.bench.runner import Server, Target
from anywire.clients.python.backoff import backoff, retry_delay

ATTEMPT_TIMEOUT = 10.0  # one negotiate + upgrade + hello (the Python client's is 5 s)


class Dropped(Exception):
    """The connection ended (reset, close frame, timeout)."""


class Closed(Dropped):
    """The server closed the WebSocket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"websocket close {code}")
        self.code = code
        self.reason = reason


@dataclass
class Stats:
    connects: int = 0
    recovered: int = 0
    not_recovered: int = 0
    refused: int = 0
    direct: int = 0  # resumes without negotiate
    direct_fallback: int = 0  # refused with 4007: negotiated in the same attempt
    direct_refused: int = 0  # refused with retry_after: waited out
    errors: int = 0
    lost: int = 0
    gaps: int = 0
    dups: int = 0
    first_error: str = ""
    drops: dict[str, int] = field(default_factory=dict)
    timeouts_at: dict[str, int] = field(default_factory=dict)  # attempt timeouts by step
    resumed_at: list[float] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = what


async def http_post(
    port: int, src: str, path: str, body: bytes, stage: Any = None
) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    if stage is not None:
        stage.stage = "negotiate answer"  # connected: the request waits for its answer
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
        else:
            data = await reader.read()  # Connection: close: the body runs to the end
            if headers.get("transfer-encoding") == "chunked":
                data = dechunk(data)
        return status, headers, data
    finally:
        writer.transport.abort()


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def ws_frame(text: str) -> bytes:
    """A masked text frame (clients must mask)."""
    payload = text.encode()
    n = len(payload)
    mask = os.urandom(4)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + body


class StormClient:
    """One simulated client: a session it keeps across drops by resuming."""

    def __init__(self, i: int, port: int, src: str, stats: Stats, ws_resume: bool = True) -> None:
        self.i = i
        self.ws_resume = ws_resume  # resume without negotiate when the server says it can
        self.direct_ok = False  # the last negotiate answer said ws_resume
        self.port = port
        self.src = src
        self.stats = stats
        self.token: str | None = None
        self.last = 0  # in_last: highest server s processed in order
        self.rx_sent = 0
        self.n_first: int | None = None
        self.n_last = 0
        self.writer: asyncio.StreamWriter | None = None
        self.live = asyncio.Event()  # a hello on the current connection
        self.hellos = 0
        self.hello_at = 0.0
        self.stopping = False
        self.rest: list[dict[str, Any]] = []
        self.stage = ""  # where an attempt is (which step timed out: timeouts_at)

    async def run(self) -> None:
        delays = backoff()
        while not self.stopping:
            try:
                async with asyncio.timeout(ATTEMPT_TIMEOUT):
                    retry_after = await self._open()
                if retry_after is None:
                    delays = backoff()  # a good connection resets the schedule
                    await self._pump()
                    retry_after = None
            except (Dropped, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError | OSError) and not isinstance(exc, Dropped):
                    self.stats.error(f"{type(exc).__name__}: {exc}")
                why = str(exc)[:40] if isinstance(exc, Dropped) else type(exc).__name__
                if isinstance(exc, TimeoutError):
                    at = self.stats.timeouts_at
                    at[self.stage] = at.get(self.stage, 0) + 1
                self.stats.drops[why] = self.stats.drops.get(why, 0) + 1
                retry_after = None
            finally:
                self.live.clear()
                if self.writer is not None:
                    self.writer.transport.abort()
                    self.writer = None
            if self.stopping:
                return
            await asyncio.sleep(retry_delay(delays, retry_after))

    async def _open(self) -> float | None:
        """Resume without negotiate where it may, else negotiate and open the WebSocket,
        up to its hello; a ``Retry-After`` to wait out when the server refused, None when
        connected."""
        if self.ws_resume and self.direct_ok and self.token and self.hellos:
            try:
                return await self._open_direct()
            except Closed as exc:
                if exc.code in (4000, 4008) and "retry_after=" in exc.reason:
                    self.stats.direct_refused += 1
                    return float(exc.reason.rsplit("retry_after=", 1)[1])
                if exc.code != 4007:
                    raise
                self.stats.direct_fallback += 1  # the session is not there: negotiate
                if self.writer is not None:
                    self.writer.transport.abort()
                    self.writer = None
        body: dict[str, Any] = {"v": 1, "transports": ["websocket"], "codecs": ["json"]}
        if self.token:
            body["resume"] = self.token
        self.stage = "negotiate connect"
        status, headers, data = await http_post(
            self.port, self.src, "/anywire/negotiate", json.dumps(body).encode(), self
        )
        if status in (429, 503):
            self.stats.refused += 1
            return float(headers.get("retry-after", "1"))
        if status != 200:
            raise Dropped(f"negotiate {status}: {data[:200]!r}")
        neg = json.loads(data)
        self.token = neg["token"]
        self.direct_ok = neg.get("ws_resume") is True
        if neg.get("resumable"):
            first = {"t": "resume", "ticket": neg["ticket"], "last": self.last}
        else:
            first = {"t": "connect", "ticket": neg["ticket"]}
        await self._upgrade(first, "")
        return await self._hello()

    async def _open_direct(self) -> None:
        """Resume over a WebSocket with no negotiate: ``resume{token, last}`` (the bench
        app is anonymous: no credential). Raises Closed when refused."""
        await self._upgrade({"t": "resume", "token": self.token, "last": self.last}, "direct ")
        await self._hello()
        self.stats.direct += 1

    async def _upgrade(self, first: dict[str, Any], stage: str) -> None:
        """Open the WebSocket and send ``first``."""
        self.stage = stage + "websocket connect"
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.src, 0)
        )
        self.stage = stage + "upgrade answer"
        self.writer = writer
        self.reader = reader
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /anywire/ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise Dropped(f"upgrade refused: {head[:100]!r}")
        writer.write(ws_frame(json.dumps(first)))
        self.stage = stage + "hello"

    async def _hello(self) -> None:
        """Read up to the hello and count it."""
        hello = None
        while hello is None:
            frames = await self._read()
            for k, frame in enumerate(frames):
                if frame.get("t") == "hello":
                    hello = frame
                    self.rest = frames[k + 1 :]  # the replay may share the hello's batch
                    break
                if frame.get("t") == "close":
                    raise Dropped(f"close {frame.get('c')}")
        resuming = self.hellos > 0
        if hello["recovered"]:
            self.stats.recovered += resuming
        else:
            self.stats.not_recovered += resuming
            self.last = self.rx_sent = hello["seq"]
        self.hellos += 1
        self.hello_at = time.monotonic()
        self.stats.connects += 1
        self.live.set()

    async def _read(self) -> list[dict[str, Any]]:
        reader = self.reader
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await reader.readexactly(8))
            payload = await reader.readexactly(n)
            op = b0 & 0x0F
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise Closed(code, payload[2:].decode("utf-8", "replace"))
            if op == 9:  # uvicorn pings are off in anywire; answer anyway
                continue
            if op in (1, 2):
                msg = json.loads(payload)
                return msg if isinstance(msg, list) else [msg]

    async def _pump(self) -> None:
        while True:
            out: list[str] = []
            frames, self.rest = self.rest or await self._read(), []
            for frame in frames:
                t = frame.get("t")
                if "s" in frame and t in ("event", "ack"):
                    s = frame["s"]
                    if s <= self.last:
                        continue  # a duplicate frame: dropped, as the protocol says
                    if s != self.last + 1:
                        raise Dropped(f"sequence gap {self.last} -> {s}")
                    self.last = s
                    if t == "event":
                        self._event(frame)
                elif t == "ping":
                    out.append('{"t":"pong"}')
                elif t == "close":
                    raise Dropped(f"close {frame.get('c')}")
            if self.last - self.rx_sent >= 16 or (out and self.last > self.rx_sent):
                out.append(f'{{"t":"rx","n":{self.last}}}')
                self.rx_sent = self.last
            if out and self.writer is not None:
                self.writer.write(ws_frame("[" + ",".join(out) + "]"))

    def _event(self, frame: dict[str, Any]) -> None:
        if frame.get("e") == "$lost":
            self.stats.lost += 1
            return
        if frame.get("e") != "n":
            return
        n = frame["d"]
        if self.n_first is None:
            self.n_first = n
        elif n <= self.n_last:
            self.stats.dups += 1
            return
        elif n != self.n_last + 1:
            self.stats.gaps += n - self.n_last - 1
        self.n_last = n

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


def ctl(port: int, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=b"")
    if path.startswith("/ctl/stats"):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(json.loads(r.read()))


def proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def nofile(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        return (
            f"open-file hard limit {hard} < {needed} needed: "
            "raise it (ulimit -Hn) or use fewer clients"
        )
    return ""


def cpu_secs(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def report(stats: Stats, pid: int, port: int, every: float = 5.0) -> None:
    """Progress on stderr while the run goes (what a stuck phase is stuck on)."""
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(every)
        try:
            server = await asyncio.to_thread(ctl, port, "/ctl/stats")
        except OSError as exc:
            server = {"stats": f"no answer: {exc}"}
        print(
            f"[storm] {time.monotonic() - t0:5.1f}s connects={stats.connects} "
            f"refused={stats.refused} errors={stats.errors} drops={stats.drops} "
            f"timeouts_at={stats.timeouts_at} "
            f"server cpu={cpu_secs(pid):.1f}s rss={proc_kb(pid, 'VmRSS')} kB "
            f"{ {k: v for k, v in server.items() if k != 'published'} }",
            file=sys.stderr,
        )


async def wait_for(cond: Any, deadline: float, step: float = 0.05) -> bool:
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)  # polling a counter, bounded by the deadline
    return True


async def storm(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    stats = Stats()
    clients = [
        StormClient(i, port, f"127.0.0.{2 + i // args.per_ip}", stats, args.ws_resume)
        for i in range(args.clients)
    ]
    if 2 + (args.clients - 1) // args.per_ip > 254:
        raise SystemExit("--per-ip too small: more than 253 source addresses")
    tasks: list[asyncio.Task[None]] = []
    reporter = asyncio.create_task(report(stats, pid, port))
    t0 = time.monotonic()
    # Open at a steady pace (not part of the measurement): the storm is what is measured.
    for c in clients:
        tasks.append(asyncio.create_task(c.run()))
        if len(tasks) % 100 == 0:
            await asyncio.sleep(100 / args.open_rate)
    ok = await wait_for(lambda: stats.connects >= args.clients, t0 + args.deadline)
    connect_secs = time.monotonic() - t0
    if not ok:
        raise SystemExit(f"only {stats.connects}/{args.clients} connected: {stats.first_error}")
    rss_ready = proc_kb(pid, "VmRSS")
    errors_before = stats.errors
    ctl(port, f"/ctl/pace?rate={args.rate}&secs={args.pace_secs}")
    await asyncio.sleep(args.before)
    # The storm: every connection drops at once.
    hellos = [c.hellos for c in clients]
    t_drop = time.monotonic()
    cpu_drop = cpu_secs(pid)
    if args.drop == "client":
        for c in clients:
            c.drop()
    else:
        ctl(port, "/ctl/drop")
    resumed = await wait_for(
        lambda: all(c.hellos > h for c, h in zip(clients, hellos, strict=True)),
        t_drop + args.deadline,
    )
    done_at = max((c.hello_at for c in clients if c.hello_at >= t_drop), default=t_drop)
    resume_secs = done_at - t_drop
    # The server's CPU seconds spent on the storm (the drop until every client is back):
    # resumes per server CPU-second does not depend on how much of a core the server got
    # on a shared machine, which the wall-clock time does.
    storm_cpu = cpu_secs(pid) - cpu_drop
    storm_wall = time.monotonic() - t_drop
    back = sum(c.hellos > h for c, h in zip(clients, hellos, strict=True))
    # Measured now, not after the catch-up wait below (later hellos would count).
    spread = sorted(c.hello_at - t_drop for c in clients if c.hello_at >= t_drop)
    gave_up = sum(c.hellos == h for c, h in zip(clients, hellos, strict=True))
    # The fan-out goes on; wait until every client has the last number (bounded; no
    # blocking call on this loop: it would stall every client with it).
    # Until the fan-out's end and 15 s more (a client on a fresh session never catches
    # up: the bench client sends no ``since``).
    end = max(t_drop - args.before + args.pace_secs, time.monotonic()) + 15.0
    total = int(args.rate * args.pace_secs)
    caught_up = await wait_for(lambda: all(c.n_last >= total for c in clients), end)
    rss_end = proc_kb(pid, "VmRSS")
    peak = proc_kb(pid, "VmHWM")
    for c in clients:
        c.stopping = True
    for t in [*tasks, reporter]:
        t.cancel()
    await asyncio.gather(*tasks, reporter, return_exceptions=True)
    behind = sum(c.n_last < total for c in clients)
    return {
        "clients": args.clients,
        "per_ip": args.per_ip,
        "drop": args.drop,
        "connect_secs": round(connect_secs, 2),
        "resume_secs": round(resume_secs, 2),
        "resume_p50_secs": round(spread[len(spread) // 2], 2) if spread else None,
        "resume_p99_secs": round(spread[int(len(spread) * 0.99)], 2) if spread else None,
        "all_resumed": resumed,
        "storm_server_cpu_secs": round(storm_cpu, 2),
        "storm_server_cpu_share": round(storm_cpu / storm_wall, 2) if storm_wall else None,
        "back_by_deadline": back,
        "resumes_per_server_cpu_sec": round(back / storm_cpu, 1) if storm_cpu else None,
        "loadavg": os.getloadavg()[0],
        "gave_up": gave_up,
        "recovered": stats.recovered,
        "not_recovered": stats.not_recovered,
        "refused": stats.refused,
        "ws_resume": args.ws_resume,
        "direct": stats.direct,
        "direct_fallback": stats.direct_fallback,
        "direct_refused": stats.direct_refused,
        "attempt_timeouts": sum(stats.timeouts_at.values()),
        "lost": stats.lost,
        "gaps": stats.gaps,
        "dups": stats.dups,
        "published": total,
        "caught_up": caught_up,
        "behind": behind,
        "errors_setup": errors_before,
        "errors_storm": stats.errors - errors_before,
        "first_error": stats.first_error,
        "drops": stats.drops,
        "timeouts_at": stats.timeouts_at,
        "server_rss_ready_kb": rss_ready,
        "server_rss_end_kb": rss_end,
        "server_peak_rss_kb": peak,
        "server_cpu_secs": round(cpu_secs(pid), 1),
        "client_cpu_secs": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        "client_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--per-ip", type=int, default=100, help="clients per source address")
    p.add_argument("--rate", type=float, default=2.0, help="fan-out events per second")
    p.add_argument("--pace-secs", type=float, default=30.0, help="how long the fan-out runs")
    p.add_argument("--before", type=float, default=3.0, help="seconds of fan-out before the drop")
    p.add_argument("--open-rate", type=float, default=1000.0, help="clients opened per second")
    p.add_argument("--deadline", type=float, default=60.0, help="bound of each phase, seconds")
    p.add_argument("--drop", choices=["client", "server"], default="client")
    p.add_argument(
        "--no-ws-resume",
        dest="ws_resume",
        action="store_false",
        help="every resume negotiates first (the resume without negotiate off: the A/B)",
    )
    p.add_argument(
        "--backlog", type=int, default=0, help="the server's accept queue (0: anywire's default)"
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="the server's max_sessions (default: twice --clients; the operator of a "
        "10,000-client node raises anywire's default of 10,000)",
    )
    args = p.parse_args()
    warn = nofile(args.clients + 200)  # one socket per client at a time, plus ours
    if warn:
        raise SystemExit(warn)
    target = Target(
        "anywire storm",
        "anywire",
        {"ws": 1.0},
        lambda port: [
            *[sys.executable, "-m", "anywire.bench.app", "--port", str(port), "--defaults"],
            *["--max-sessions", str(args.max_sessions or 2 * args.clients)],
            *(["--backlog", str(args.backlog)] if args.backlog else []),
        ],
    )
    ncpu = os.cpu_count() or 1
    server = Server(target, 0 if ncpu > 1 else None)
    if ncpu > 1:
        os.sched_setaffinity(0, {1})
    try:
        result = asyncio.run(storm(args, server.port, server.proc.pid))
    finally:
        server.stop()
    result["cpus"] = ncpu
    print(json.dumps(result))
    for k in (
        "resume_secs", "storm_server_cpu_secs", "resumes_per_server_cpu_sec", "gave_up",
        "recovered", "not_recovered", "lost", "gaps", "dups", "direct", "direct_fallback",
        "direct_refused", "attempt_timeouts", "server_peak_rss_kb",
    ):  # fmt: skip
        print(f"{k:>20}: {result[k]}")


if __name__ == "__main__":
    random.seed()
    main()
