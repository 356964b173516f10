"""Run one workload against one server: start it pinned, load it, measure, stop it.

A :class:`Target` says how to start a server (a command taking the port) and which dialect
and transport the generator speaks to it. :func:`run` starts a fresh server process for
every measurement, so RSS and CPU belong to that measurement alone.

Workloads:

* ``fanout``: every client sits in one room; the server publishes ~``size``-byte events
  as fast as it can deliver them. Result: deliveries/s and publish-to-receive latency.
* ``open``: the same room, but the server publishes ``rate`` events per second on a fixed
  schedule (open loop), whatever it manages to deliver; each event is stamped with the
  time it was due, so latency counts from when the event should have gone out. Result:
  publish-to-receive latency at that offered load (and deliveries/s: below ``rate`` x
  clients once the server cannot keep up).
* ``echo``: every client does sequential emit-with-ack (request, wait, repeat). Result:
  round trips/s and RTT percentiles.
* ``idle``: clients connect and stay quiet. Result: server RSS before and after, KB per
  connection, and the time to set every connection up.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .generator import Generator, cpu_prefix

__all__ = [
    "KINDS",
    "External",
    "Target",
    "anywire_target",
    "external",
    "free_port",
    "raise_nofile",
    "run",
    "run_external",
]

KINDS = {"websocket": "ws", "sse": "sse", "longpoll": "poll", "polling": "poll"}
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    """A server to measure. ``command(port)`` starts it; ``dialect`` is what the generator
    speaks (anywire, sio or raw); ``mix`` maps generator kinds (ws, sse, poll) to shares."""

    name: str
    dialect: str
    mix: dict[str, float]
    command: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    nodes: int = 1


def anywire_target(transports: list[str], redis: str | None = None, nodes: int = 1) -> Target:
    """anywire's bench app with the clients spread evenly over ``transports``."""
    kinds = [KINDS[t] for t in transports]
    name = "anywire " + "+".join(transports) + (f" x{nodes} nodes" if nodes > 1 else "")

    def command(port: int) -> list[str]:
        cmd = [sys.executable, "-m", "anywire.bench.app", "--port", str(port)]
        if redis:
            cmd += ["--redis", redis]
        return cmd

    return Target(name, "anywire", {k: 1 / len(kinds) for k in kinds}, command, nodes=nodes)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def split(clients: int, mix: dict[str, float]) -> dict[str, int]:
    """``clients`` spread over the mix's kinds (rounding goes to the first kinds)."""
    kinds = list(mix)
    counts = {k: int(clients * mix[k]) for k in kinds}
    for k in kinds[: clients - sum(counts.values())]:
        counts[k] += 1
    return counts


class Server:
    """A server process pinned to one CPU; RSS and CPU time read from /proc."""

    def __init__(self, target: Target, cpu: int | None, port: int | None = None) -> None:
        self.port = port or free_port()
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env.update(target.env)
        # A file, not a pipe: nobody reads a pipe while the server runs, and a server
        # that logs more than the pipe holds (a storm's refusals) blocks in write().
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [*cpu_prefix(cpu), *target.command(self.port)],
            env=env,
            cwd=str(REPO),
            stdout=subprocess.DEVNULL,
            stderr=self.err,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.err.seek(0)
                    err = self.err.read().decode(errors="replace")
                    self.stop()
                    raise RuntimeError(f"{target.name} did not start: {err[-2000:]}") from None
                time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url("/ctl/stats"), timeout=5) as r:
            return dict(json.loads(r.read()))

    def start_publishing(self, secs: float, size: int, burst: int, rate: float = 0.0) -> None:
        _start_publishing(self.url(""), secs, size, burst, rate)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_secs(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def run(
    target: Target,
    workload: str,
    clients: int,
    secs: float = 10.0,
    size: int = 100,
    burst: int = 10,
    progress: Callable[[str], None] | None = None,
    server_cpu: int | None = 0,
    gen_cpu: int | None = 1,
    rate: float = 0.0,
    rx_every: int | None = None,
) -> dict[str, Any]:
    """One measurement on a fresh server; returns a flat result dict. ``rate``: events
    per second of the ``open`` workload; ``rx_every``: the clients' receipt cadence,
    None for the advertised rule (:class:`~anywire.bench.generator.Generator`)."""
    if workload == "open" and rate <= 0:
        raise ValueError("the open workload needs a positive rate (events per second)")
    raise_nofile()
    servers = [Server(target, server_cpu) for _ in range(target.nodes)]
    gens: list[Generator] = []
    try:
        time.sleep(0.3)
        rss_base = sum(s.rss_kb() for s in servers)
        per_node = [
            clients // len(servers) + (i < clients % len(servers)) for i in range(len(servers))
        ]
        for server, n in zip(servers, per_node, strict=True):
            mix = split(n, target.mix)
            gens.append(
                Generator(server.port, target.dialect, _gen_workload(workload), mix, size,
                          gen_cpu, progress, rx_every=rx_every)
            )  # fmt: skip
        readies = [g.ready() for g in gens]
        time.sleep(1.0 if workload == "idle" else 0.2)  # let the server settle
        rss_ready = sum(s.rss_kb() for s in servers)
        if workload in ("fanout", "open"):
            # Publishing starts on the first node only; other nodes receive via the broker.
            servers[0].start_publishing(secs + 1.5, size, burst, rate if workload == "open" else 0)
            time.sleep(0.5)
        cpu0 = [s.cpu_secs() for s in servers]
        t0 = time.monotonic()
        measure_secs = secs if workload != "idle" else min(secs, 1.0)
        results = _measure_all(gens, measure_secs)
        wall = time.monotonic() - t0
        cpu = [(s.cpu_secs() - c) / wall for s, c in zip(servers, cpu0, strict=True)]
        rss_end = sum(s.rss_kb() for s in servers)
        stats = servers[0].stats()
    finally:
        for g in gens:
            g.stop()
        for s in servers:
            s.stop()
    return _summary(
        target,
        workload,
        clients,
        size,
        burst,
        readies,
        results,
        locals_=dict(rss_base=rss_base, rss_ready=rss_ready, rss_end=rss_end, cpu=cpu, stats=stats),
        rate=rate,
    )


def _gen_workload(workload: str) -> str:
    """What the generator does: for the open workload, count deliveries as in fan-out."""
    return "fanout" if workload == "open" else workload


@dataclass
class External:
    """A server already running (``anywire bench --url``): the generator connects to
    ``address:port`` (IPv4) and sends ``vhost`` as Host; nothing is started or pinned."""

    url: str
    address: str
    port: int
    vhost: str
    token: str | None = None


def external(url: str, token: str | None = None) -> External:
    """Check ``url`` (``http://host[:port]``, anywire at ``/anywire``) and resolve its host;
    :class:`ValueError` says what is wrong."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"--url must be http://host[:port], got {url!r} (the load generator "
            "speaks plain HTTP: bench a TLS server through its plain-HTTP port)"
        )
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"--url must be the server's root (endpoints at /anywire), got {url!r}")
    port = parts.port or 80
    try:
        infos = socket.getaddrinfo(parts.hostname, port, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"cannot resolve {parts.hostname!r} to an IPv4 address: {exc}") from None
    base = f"http://{parts.netloc}"
    return External(base, str(infos[0][4][0]), port, parts.netloc, token)


def _start_publishing(base: str, secs: float, size: int, burst: int, rate: float = 0.0) -> None:
    query = f"?secs={secs}&size={size}&burst={burst}" + (f"&rate={rate}" if rate > 0 else "")
    req = urllib.request.Request(f"{base}/ctl/start{query}", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


def _control_stats(base: str) -> dict[str, Any] | None:
    """The bench app's ``/ctl/stats``, or None when the server is not anywire's bench app."""
    try:
        with urllib.request.urlopen(f"{base}/ctl/stats", timeout=5) as r:
            data = json.loads(r.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "published" in data else None


def run_external(
    target: External,
    workload: str,
    transports: list[str],
    clients: int,
    secs: float = 10.0,
    size: int = 100,
    burst: int = 10,
    progress: Callable[[str], None] | None = None,
    gen_cpu: int | None = None,
    rate: float = 0.0,
) -> dict[str, Any]:
    """One measurement of a running server. ``idle`` works against any anywire server
    (that accepts the token, if any); ``echo`` needs an ``echo`` handler that answers with
    its data and ``fanout`` the bench app's publisher (``python -m anywire.bench.app``)."""
    raise_nofile()
    try:
        urllib.request.urlopen(f"{target.url}/anywire/health", timeout=5).read()
    except (OSError, urllib.error.URLError) as exc:
        raise RuntimeError(f"{target.url} does not answer /anywire/health: {exc}") from None
    stats = _control_stats(target.url)
    if workload == "open" and rate <= 0:
        raise ValueError("the open workload needs a positive rate (events per second)")
    if workload in ("fanout", "open") and stats is None:
        raise RuntimeError(
            f"{workload} needs anywire's bench app at {target.url} (POST /ctl/start: "
            "python -m anywire.bench.app); use --workload idle or echo"
        )
    kinds = [KINDS[t] for t in transports]
    mix = {k: 1 / len(kinds) for k in kinds}
    name = f"{target.url} " + "+".join(transports)
    gen = Generator(
        target.port,
        "anywire",
        _gen_workload(workload),
        split(clients, mix),
        size,
        gen_cpu,
        progress,
        host=target.address,
        vhost=target.vhost,
        token=target.token,
    )
    try:
        readies = [gen.ready()]
        if workload in ("fanout", "open"):
            paced = rate if workload == "open" else 0.0
            _start_publishing(target.url, secs + 1.5, size, burst, paced)
            time.sleep(0.5)
        results = [gen.measure(secs if workload != "idle" else min(secs, 1.0))]
    finally:
        gen.stop()
    setup_error = next((line for line in gen.log if line.startswith("[gen] first error")), "")
    if setup_error and not results[0]["first_error"]:  # e.g. "negotiate 401": a bad --token
        results[0]["first_error"] = setup_error.split(": ", 1)[-1]
    if workload == "echo" and results[0]["deliveries"] == 0 and not results[0]["first_error"]:
        results[0]["first_error"] = (
            "no echo came back: the server needs an 'echo' handler "
            "that answers with its data (as anywire.bench.app's)"
        )
        results[0]["errors"] += 1
    named = Target(name, "anywire", mix, lambda port: [])
    stats = _control_stats(target.url) or {}
    locals_: dict[str, Any] = dict(rss_base=None, rss_ready=None, rss_end=None, cpu=[], stats=stats)
    return _summary(named, workload, clients, size, burst, readies, results, locals_, rate)


def _measure_all(gens: list[Generator], secs: float) -> list[dict[str, Any]]:
    if len(gens) == 1:
        return [gens[0].measure(secs)]
    import threading

    out: list[dict[str, Any]] = [{} for _ in gens]

    def one(i: int) -> None:
        out[i] = gens[i].measure(secs)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(gens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _summary(
    target: Target,
    workload: str,
    clients: int,
    size: int,
    burst: int,
    readies: list[dict[str, Any]],
    results: list[dict[str, Any]],
    locals_: dict[str, Any],
    rate: float = 0.0,
) -> dict[str, Any]:
    deliveries = sum(r["deliveries"] for r in results)
    wall = max(r["secs"] for r in results)
    lat = results[0]["lat_us"]  # percentiles of the first generator (node 1's clients)
    ready = sum(r["ready"] for r in readies)
    errors = sum(r["errors"] + r["closed"] for r in results) + sum(r["failed"] for r in readies)
    first_error = next((r["first_error"] for r in results if r["first_error"]), "")
    rss_base, rss_ready = locals_["rss_base"], locals_["rss_ready"]
    return {
        "target": target.name,
        "dialect": target.dialect,
        "workload": workload,
        "clients": clients,
        "ready": ready,
        "size": size,
        "burst": burst,
        "offered": rate if workload == "open" else None,
        "secs": round(wall, 3),
        "deliveries": deliveries,
        "rate": round(deliveries / wall, 1) if wall else 0.0,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": errors,
        "first_error": first_error,
        "connect_secs": max(r["connect_secs"] for r in readies),
        "server_rss_base_kb": rss_base,
        "server_rss_ready_kb": rss_ready,
        "server_rss_end_kb": locals_["rss_end"],
        "kb_per_conn": (
            round((rss_ready - rss_base) / clients, 2) if clients and rss_base is not None else None
        ),
        "server_cpu": [round(c, 3) for c in locals_["cpu"]],
        "gen_cpu": round(sum(r["gen_cpu"] for r in results), 3),
        # Receipts the WebSocket clients sent while measuring (older generators: None).
        "rx_sent": sum(r.get("rx_sent", 0) for r in results) if results else None,
        "server_stats": locals_["stats"],
    }
