"""Forced fallback: when WebSocket (then SSE) is disabled or failing, the client lands on
the next transport by itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from anywire.clients.python import Client

from .conftest import Server, make_token, start_server


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    started = {
        "ws-disabled": start_server({"AW_TRANSPORTS": "sse,longpoll"}),
        "ws-failing": start_server({"AW_BREAK": "websocket"}),
        "ws-and-sse-failing": start_server({"AW_BREAK": "websocket,sse"}),
    }
    yield started
    for srv in started.values():
        srv.stop()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("ws-disabled", "sse"), ("ws-failing", "sse"), ("ws-and-sse-failing", "longpoll")],
)
async def test_client_falls_back(servers: dict[str, Server], name: str, expected: str) -> None:
    client = Client(servers[name].url, token=lambda: make_token("fallback"), connect_timeout=2)
    try:
        await client.connect()
        assert client.transport == expected
        assert await client.call("echo", "through") == "through"
    finally:
        await client.close()
