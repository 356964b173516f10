"""The Host allow-list (``allowed_hosts``, ``--allowed-host``) and the DNS-rebinding hole
it closes (issue #13, point 6), on every transport.

A rebinding page at ``http://evil.example:PORT`` reaches this server under that name: its
requests carry ``Host: evil.example:PORT`` and the matching ``Origin``, which the
same-origin rule alone accepts. With an allow-list the request is refused before
anything else: 400/4502 on HTTP, 403 on the WebSocket upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from .conftest import Server, make_token, start_server

REFUSED = {"error": "bad_request", "code": 4502, "message": "host not allowed"}


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    """A server started with the CLI option: 127.0.0.1 and *.good.example only."""
    srv = start_server({}, args=("--allowed-host", "127.0.0.1", "--allowed-host", ".good.example"))
    yield srv
    srv.stop()


def _as(host: str, port: int) -> dict[str, str]:
    """Headers of a browser page served from ``http://host:port`` (Origin = own Host)."""
    return {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}"}


async def _upgrade(port: int, headers: dict[str, str]) -> int:
    """The HTTP status a WebSocket upgrade of /anywire/ws gets with these headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        "GET /anywire/ws HTTP/1.1",
        *(f"{k}: {v}" for k, v in headers.items()),
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        async with asyncio.timeout(5):
            status = await reader.readline()
    finally:
        writer.close()
    return int(status.split()[1])


async def _negotiate(
    http: httpx.AsyncClient, transport: str, headers: dict[str, str]
) -> httpx.Response:
    auth = {"Authorization": f"Bearer {make_token('hosted')}"}
    return await http.post(
        "/anywire/negotiate",
        json={"v": 1, "transports": [transport], "codecs": ["json"]},
        headers={**headers, **auth},
    )


async def _open(
    http: httpx.AsyncClient, transport: str, port: int, headers: dict[str, str], ticket: str
) -> int:
    """Open the transport with ``ticket``; the status of the opening request."""
    if transport == "websocket":
        return await _upgrade(port, headers)
    path = "/anywire/sse" if transport == "sse" else "/anywire/poll"
    async with http.stream("GET", path, params={"ticket": ticket}, headers=headers) as r:
        return r.status_code


async def test_a_rebound_host_is_refused_everywhere(guarded: Server, transport: str) -> None:
    evil = _as("evil.example", guarded.port)
    async with httpx.AsyncClient(base_url=guarded.url, timeout=10) as http:
        r = await _negotiate(http, transport, evil)
        assert (r.status_code, r.json()) == (400, REFUSED)
        assert "access-control-allow-origin" not in r.headers
        # A ticket obtained under an allowed name does not open under a rebound one.
        good = await _negotiate(http, transport, {})
        assert good.status_code == 200
        neg = good.json()
        status = await _open(http, transport, guarded.port, evil, neg["ticket"])
        assert status == (403 if transport == "websocket" else 400)
        send = await http.post(
            "/anywire/send",
            json={"t": "ping"},
            headers={**evil, "X-Anywire-Token": neg["token"]},
        )
        assert (send.status_code, send.json()) == (400, REFUSED)
        # Load balancers probe health by address, whatever the Host.
        assert (await http.get("/anywire/health", headers=evil)).status_code == 200


async def test_an_allowed_subdomain_works(guarded: Server, transport: str) -> None:
    page = _as("chat.good.example", guarded.port)
    async with httpx.AsyncClient(base_url=guarded.url, timeout=10) as http:
        r = await _negotiate(http, transport, page)
        assert r.status_code == 200
        status = await _open(http, transport, guarded.port, page, r.json()["ticket"])
        assert status == (101 if transport == "websocket" else 200)
        # A Host that only ends like an allowed domain is not in it.
        r = await _negotiate(http, transport, _as("evilgood.example", guarded.port))
        assert r.status_code == 400


async def test_without_a_list_any_host_is_served(server: Server, transport: str) -> None:
    """The default (documented as a DNS-rebinding risk in docs/protocol.md 11.5)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await _negotiate(http, transport, _as("evil.example", server.port))
        assert r.status_code == 200
