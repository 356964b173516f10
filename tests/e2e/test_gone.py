"""Work for clients that have gone (server/stale.py): a WebSocket upgrade whose client
closed the connection before the server read it, or a negotiate whose client closed it
after the request waited GONE_AFTER in the kernel, is closed unparsed and unanswered.
Nobody reads that answer; in a reconnect storm it is work for attempts their clients
have given up.

The wait is real: the server process is stopped (SIGSTOP) while the request is sent and
its socket closed. What a served negotiate leaves behind is a ticket whose slot is held
(``max_sessions_per_user`` 1 here): a later negotiate of the same user is refused busy
while it lasts. The control keeps the first client's socket open, so its negotiate is
served and the second one refused: the test can fail. A client that half-closes at once
(no wait) is still answered.
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
from anywire.server.stale import GONE_AFTER

from .conftest import Server, make_token, start_server

TRANSPORTS = ("websocket", "sse", "longpoll")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({"AW_MAX_SESSIONS_PER_USER": "1"}, args=("--log-level", "info"))
    yield srv
    srv.stop()


def _negotiate(port: int, transport: str, user: str) -> bytes:
    body = json.dumps({"v": 1, "transports": [transport]}).encode()
    return (
        f"POST /anywire/negotiate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {make_token(user)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def _while_stopped(
    server: Server, request: bytes, leave: bool, wait: float = 0.0, half: bool = False
) -> socket.socket:
    """Send ``request`` while the server is stopped for ``wait`` seconds; ``leave``:
    close the socket before the server runs again (the client gave the attempt up);
    ``half``: only shut its sending side."""
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        sock.sendall(request)
        if leave:
            sock.close()  # the FIN reaches the server's socket before it reads anything
        elif half:
            sock.shutdown(socket.SHUT_WR)
        time.sleep(wait)  # the stimulus: the request waits in the kernel
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    return sock


def _status(server: Server, transport: str, user: str) -> int:
    """A negotiate's status, once the shedding a stop of a second caused is over (its
    503 says "overloaded"; a held slot's says why)."""
    deadline = time.monotonic() + HOLD + 5
    while True:
        answer = httpx.post(
            f"{server.url}/anywire/negotiate",
            json={"transports": [transport]},
            headers={"Authorization": f"Bearer {make_token(user)}"},
            timeout=20,
        )
        if answer.status_code != 503 or "overloaded" not in answer.json()["message"]:
            return answer.status_code
        assert time.monotonic() < deadline, "still shedding"
        time.sleep(0.1)  # a retry's pace, bounded by the deadline


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    with sock:
        while chunk := sock.recv(65536):  # Connection: close ends it (20 s timeout)
            data += chunk
    return data


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_negotiate_whose_client_left_is_not_served(server: Server, transport: str) -> None:
    user = f"gone-{transport}"
    _while_stopped(server, _negotiate(server.port, transport, user), True, GONE_AFTER + 0.1)
    # Served, it would hold the user's only slot (its ticket) and this one would be busy.
    assert _status(server, transport, user) == 200


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_control_a_negotiate_whose_client_waits_is_served(server: Server, transport: str) -> None:
    user = f"stays-{transport}"
    sock = _while_stopped(server, _negotiate(server.port, transport, user), leave=False)
    data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert _status(server, transport, user) == 503  # the slot is held by its ticket


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_negotiate_half_closed_at_once_is_answered(server: Server, transport: str) -> None:
    user = f"half-{transport}"
    sock = _while_stopped(server, _negotiate(server.port, transport, user), False, half=True)
    data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 200"), data[:300]


def test_an_upgrade_whose_client_left_is_not_served(server: Server) -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    request = (
        f"GET /anywire/ws?left=1 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    log_before = server.log.stat().st_size
    _while_stopped(server, request, leave=True)
    # One served after it, on a connection the client keeps: its line is logged.
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(request.replace(b"left=1", b"stayed=1"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 101")
    with server.log.open("rb") as log:
        log.seek(log_before)
        lines = log.read().decode(errors="replace")
    assert "stayed=1" in lines  # uvicorn logs every accepted WebSocket at INFO
    assert "left=1" not in lines
