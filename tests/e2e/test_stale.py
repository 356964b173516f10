"""Shed by the age of the work (server/stale.py): a negotiate whose request waited in the
kernel longer than a client waits for its answer is answered at once with a canned 503
busy (code 4000, Retry-After), unparsed; other requests that waited as long, and fresh
negotiates, are served as usual.

The wait is real: the server process is stopped (SIGSTOP) while the requests are sent,
so their bytes sit in the kernel, and continued after STALE_AFTER. One negotiate per
transport (websocket, sse, longpoll) in the same stop: the stop is the slow part.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from anywire.server.overload import HOLD
from anywire.server.stale import STALE_AFTER

from .conftest import Server, make_token, start_server

TRANSPORTS = ("websocket", "sse", "longpoll")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({})
    yield srv
    srv.stop()


def _send(port: int, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(request)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    with sock:
        while chunk := sock.recv(65536):  # Connection: close ends it (20 s timeout)
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _negotiate(port: int, transport: str) -> bytes:
    body = json.dumps({"v": 1, "transports": [transport]}).encode()
    return (
        f"POST /anywire/negotiate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def test_a_negotiate_that_waited_too_long_is_shed_unparsed(server: Server) -> None:
    port = server.port
    health = b"GET /anywire/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        waiting = {t: _send(port, _negotiate(port, t)) for t in TRANSPORTS}
        other = _send(port, health)
        time.sleep(STALE_AFTER + 0.5)  # the stimulus: the requests wait in the kernel
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    for transport, sock in waiting.items():
        status, headers, body = _answer(sock)
        assert status == 503, transport
        assert 1 <= int(headers["retry-after"]) <= 10
        assert headers["connection"] == "close"
        payload = json.loads(body)
        assert payload["error"] == "busy" and payload["code"] == 4000
        assert payload["retry_after"] == int(headers["retry-after"])
    status, _, _ = _answer(other)
    assert status == 200  # not a negotiate: served however long it waited
    # Fresh negotiates are served, once the loop-lateness shedding the stop itself
    # caused (5.5 s late) has held its second (server/overload.py HOLD).
    deadline = time.monotonic() + HOLD + 5
    for transport in TRANSPORTS:
        while True:
            answer = httpx.post(
                f"{server.url}/anywire/negotiate",
                json={"transports": [transport]},
                headers={"Authorization": f"Bearer {make_token('stale')}"},
            )
            if answer.status_code != 503:
                break
            assert time.monotonic() < deadline, "still shedding"
            time.sleep(0.1)  # a retry's pace, bounded by the deadline
        assert answer.status_code == 200
        assert answer.json()["transports"][0]["name"] == transport
