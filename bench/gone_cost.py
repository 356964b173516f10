"""Server CPU spent on requests whose clients have gone, and on refusing negotiates
while the node sheds (server/stale.py).

In a reconnect storm many attempts are given up by their clients while the request waits
in the kernel (docs/perf/storm.md). This measures what such a request costs the node: the
server (the bench app on anywire's default settings, pinned to CPU 0) is stopped
(SIGSTOP), ``--batch`` connections each send a negotiate (or a WebSocket upgrade) and
close, the server is continued, and its CPU seconds (from /proc) are read once it has
handled them all. ``shed``: the same with negotiates whose clients wait for their
answers, the server stopped longer than its ``shed_lag`` (its loop is late when it runs
again: it refuses them, 503). Rounds alternate between kinds; the best round of each is
reported as microseconds of server CPU per connection.

    python3 bench/gone_cost.py --batch 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anywire.bench.runner import Server, Target

PER_IP = 50  # negotiates per source address and round (the default burst is 100)


def cpu_secs(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(kind: str, port: int) -> bytes:
    if kind == "upgrade":
        return (
            f"GET /anywire/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    body = json.dumps({"v": 1, "transports": ["websocket"], "codecs": ["json"]}).encode()
    return (
        f"POST /anywire/negotiate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def stats(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ctl/stats", timeout=30) as r:
        return dict(json.loads(r.read()))


def settle(pid: int, port: int, deadline: float) -> None:
    """Until the server has handled what it was sent: it answers a request queued after
    them, and its CPU time stops growing (bounded by ``deadline``)."""
    stats(port)
    last = cpu_secs(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)  # a bench's polling interval, bounded by the deadline
        now = cpu_secs(pid)
        if now - last < 0.005:
            return
        last = now


def one_round(
    kind: str, server: Server, batch: int, first_ip: int, answers: dict[int, int]
) -> float:
    """Server CPU microseconds per connection of one batch. ``shed``: negotiates whose
    clients wait for their answers, sent while the server is stopped longer than its
    ``shed_lag`` (0.5 s): it refuses them (503) once it runs again; the statuses are
    counted in ``answers``."""
    pid = server.proc.pid
    data = request("negotiate" if kind == "shed" else kind, server.port)
    kept: list[socket.socket] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        before = cpu_secs(pid)
        for i in range(batch):
            n = first_ip + i // PER_IP
            src = f"127.0.{1 + n // 250}.{2 + n % 250}"
            sock = socket.create_connection(
                ("127.0.0.1", server.port), timeout=30, source_address=(src, 0)
            )
            sock.sendall(data)
            if kind == "shed":
                kept.append(sock)
            else:
                sock.close()  # the client gave the attempt up
        # A negotiate counts as given up once it waited GONE_AFTER (0.2 s); the loop is
        # late (shedding) past shed_lag (0.5 s).
        time.sleep(0.8 if kind == "shed" else 0.3)
    finally:
        os.kill(pid, signal.SIGCONT)
    for sock in kept:
        with sock:
            head = sock.recv(64)
            status = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
            answers[status] = answers.get(status, 0) + 1
    settle(pid, server.port, time.monotonic() + 60)
    return (cpu_secs(pid) - before) / batch * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=1000, help="connections per round (<= backlog)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backlog", type=int, default=0, help="0: the server's default")
    args = p.parse_args()
    target = Target(
        "anywire gone",
        "anywire",
        {"ws": 1.0},
        lambda port: [
            *[sys.executable, "-m", "anywire.bench.app", "--port", str(port), "--defaults"],
            *(["--backlog", str(args.backlog)] if args.backlog else []),
        ],
    )
    server = Server(target, 0 if (os.cpu_count() or 1) > 1 else None)
    results: dict[str, list[float]] = {"negotiate": [], "upgrade": [], "shed": []}
    answers: dict[int, int] = {}
    ip = 0
    try:
        for _ in range(args.rounds):
            for kind in results:
                results[kind].append(one_round(kind, server, args.batch, ip, answers))
                ip += args.batch // PER_IP + 1
                if ip > 200 * 250:
                    ip = 0
        final = stats(server.port)
    finally:
        server.stop()
    out = {
        kind: {"best_us": round(min(v), 1), "rounds_us": [round(x, 1) for x in v]}
        for kind, v in results.items()
    }
    out["gone"] = final.get("gone")  # counted by the server (None before stale.py did)
    out["shed_answers"] = answers  # status -> count, of the "shed" rounds' negotiates
    out["loadavg"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
