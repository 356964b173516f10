"""While a node sheds (its loop is late: server/overload.py), ``anywire serve`` refuses a
negotiate before parsing it (server/stale.py): the canned ``503 busy`` costs the node a
fraction of the same refusal through the application, and the crowd a node must refuse
in a reconnect storm is larger than what it can afford to parse. A browser's negotiate
(an ``Origin`` header) still goes through the application, for its CORS headers.

The overload is real: the server blocks its own loop (tests/e2e/stallapp.py,
``/ctl/overload``). uvicorn adds a ``date`` header to every answer of the application;
the canned answer has none: that tells the two apart.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import Server, start_server

TRANSPORTS = ("websocket", "sse", "longpoll")
APP = "tests.e2e.stallapp:app"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({}, app=APP)
    yield srv
    srv.stop()


def _negotiate(server: Server, transport: str, origin: str | None = None) -> tuple[int, str]:
    body = json.dumps({"v": 1, "transports": [transport]}).encode()
    extra = f"Origin: {origin}\r\n" if origin else ""
    request = (
        f"POST /anywire/negotiate HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    data = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):  # Connection: close ends it (20 s timeout)
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    return int(head.split()[1]), head.lower()


def _shed(server: Server, transport: str, origin: str | None = None) -> str:
    """The head of the first 503 while the node is overloaded (bounded)."""
    deadline = time.monotonic() + 8
    while True:
        status, head = _negotiate(server, transport, origin)
        if status == 503:
            return head
        assert time.monotonic() < deadline, "never shed"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_negotiate_is_refused_unparsed_while_the_node_sheds(
    server: Server, transport: str
) -> None:
    httpx.post(f"{server.url}/ctl/overload?secs=3", timeout=20).raise_for_status()
    head = _shed(server, transport)
    assert "\r\ndate:" not in head  # not through the application: canned, unparsed
    assert "\r\nconnection: close" in head
    assert 1 <= int(head.split("retry-after: ")[1].split("\r\n")[0]) <= 30
    # A browser's, still in the overload: the application answers it (here 403: this
    # origin is not allowed, which the application checks first).
    status, browser = _negotiate(server, transport, origin="http://elsewhere.example")
    assert status in (403, 503) and "\r\ndate:" in browser
    # Once the node keeps time again, negotiates are served.
    deadline = time.monotonic() + 15
    while _negotiate(server, transport)[0] == 503:
        assert time.monotonic() < deadline, "still shedding"
        time.sleep(0.1)  # a retry's pace, bounded by the deadline
    assert _negotiate(server, transport)[0] == 200
