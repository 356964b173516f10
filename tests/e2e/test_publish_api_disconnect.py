"""The server API's disconnect command (issue #15): ``POST /anywire/api/disconnect``
closes one session, or every session of a user, with 4500 and the reason given; the
client does not reconnect and the session cannot be resumed. Real server, real clients
on every transport."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client, ConnectionClosed

from .conftest import Server, make_token, start_server
from .test_publish_api import WAIT, _client

KEY = "disconnect-api-key-" + secrets.token_hex(8)
AUTH = {"X-API-Key": KEY}
URL = "/anywire/api/disconnect"


@pytest.fixture(scope="module")
def api() -> Iterator[Server]:
    srv = start_server({"ANYWIRE_API_KEY": KEY})
    yield srv
    srv.stop()


def disconnect(server: Server, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(server.url + URL, json=body, headers=headers or AUTH)


async def ended(client: Client) -> ConnectionClosed:
    """Wait (bounded) until ``client`` is closed for good; its ConnectionClosed."""
    gone = asyncio.Event()
    client.on_state(lambda state: gone.set() if state == "disconnected" else None)
    if client.state != "disconnected":
        async with asyncio.timeout(WAIT):
            await gone.wait()
    with pytest.raises(ConnectionClosed) as info:
        await client.emit("x", 1)
    return info.value


async def test_disconnect_one_session(api: Server, transport: str) -> None:
    tag = secrets.token_hex(3)
    target = await _client(api, f"dc-{tag}", transport)
    other = await _client(api, f"dc-{tag}", transport)  # the same user, another session
    try:
        answer = disconnect(api, {"sid": target.sid, "reason": "account suspended"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ok": True, "disconnected": 1, "nodes_unanswered": 0}
        closed = await ended(target)
        assert closed.code == 4500 and closed.reason == "account suspended"
        assert other.state == "connected"  # only the one session
        # The session is over: a second disconnect finds nothing.
        assert disconnect(api, {"sid": target.sid}).json()["disconnected"] == 0
    finally:
        await target.close()
        await other.close()


async def test_disconnect_every_session_of_a_user(api: Server, transport: str) -> None:
    tag = secrets.token_hex(3)
    mine = [await _client(api, f"dcu-{tag}", transport) for _ in range(2)]
    elsewhere = Client(
        api.url, make_token(f"dcu-{tag}"), transports=(transport,), namespace="/other"
    )
    await elsewhere.connect()
    bystander = await _client(api, f"dcb-{tag}", transport)
    try:
        only_other = disconnect(api, {"user": f"dcu-{tag}", "ns": "/other"})
        assert only_other.json()["disconnected"] == 1
        assert (await ended(elsewhere)).code == 4500
        assert all(c.state == "connected" for c in mine)
        answer = disconnect(api, {"user": f"dcu-{tag}"})  # every namespace
        assert answer.json()["disconnected"] == 2
        for client in mine:
            closed = await ended(client)
            assert closed.code == 4500 and closed.reason == "disconnected by the server"
        assert bystander.state == "connected"
        await bystander.emit("echo", "still here")  # its connection still works
    finally:
        for client in (*mine, elsewhere, bystander):
            await client.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "exactly one of 'sid', 'user'"),
        ({"sid": "a", "user": "b"}, "exactly one of"),
        ({"user": ""}, "1-200 characters"),
        ({"user": 7}, "1-200 characters"),
        ({"user": "u", "ns": "chat"}, "'ns' must be a string starting with '/'"),
        ({"user": "u", "reason": "x" * 101}, "'reason' must be a string of 1-100"),
        ({"user": "u", "reason": ""}, "'reason' must be a string of 1-100"),
        ({"user": "u", "code": 4000}, "unknown field(s): code"),
        ([{"user": "u"}], "must be a JSON object"),
    ],
)
def test_bad_disconnects_get_a_clear_400(api: Server, body: Any, message: str) -> None:
    answer = disconnect(api, body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["message"]


def test_disconnect_needs_the_key_and_post(api: Server) -> None:
    assert disconnect(api, {"user": "u"}, headers={"X-API-Key": "nope"}).status_code == 401
    assert httpx.get(api.url + URL, headers=AUTH).status_code == 405
    over = httpx.post(api.url + URL, content=b" " * 5000, headers=AUTH)
    assert over.status_code == 413
