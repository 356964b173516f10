"""The server HTTP API (issue #15): a backend publishes with an API key over plain HTTP
(``POST /anywire/publish``, a batch form) and reads presence and history; clients on
each transport receive what it published, in order, exactly once per idempotency key.
A real server (``anywire serve --api-key``), real clients, plain httpx requests."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client
from anywire.core.redact import ScrubSecrets
from anywire.server.app import Anywire

from .conftest import Server, make_token, start_server

KEY = "test-api-key-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {KEY}"}
WAIT = 5.0


@pytest.fixture(scope="module")
def api() -> Iterator[Server]:
    srv = start_server({}, args=("--api-key", KEY))
    yield srv
    srv.stop()


def publish(server: Server, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(server.url + "/anywire/publish", json=body, headers=headers or AUTH)


class Inbox:
    """What one client received of one event, with a wait for the n-th."""

    def __init__(self, client: Client, event: str) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Event()

        @client.on(event)
        def got(data: Any) -> None:
            self.items.append(data)
            self.changed.set()

    async def wait(self, n: int) -> list[Any]:
        async with asyncio.timeout(WAIT):
            while len(self.items) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.items


async def _client(server: Server, user: str, transport: str) -> Client:
    client = Client(server.url, token=make_token(user), transports=(transport,))
    await client.connect()
    assert client.transport == transport
    return client


async def test_room_user_and_sid_publishes_arrive_in_order(api: Server, transport: str) -> None:
    tag = secrets.token_hex(3)
    client = await _client(api, f"pub-{tag}", transport)
    inbox = Inbox(client, "news")
    try:
        await client.join(f"room-{tag}")
        # A batch to the room, then one to the user and one to the session: each its own
        # stream, all in the order published here.
        items = [{"event": "news", "room": f"room-{tag}", "data": i} for i in range(5)]
        answer = publish(api, {"items": items})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["ok"] for r in results] == [True] * 5
        assert [r["pos"][2] for r in results] == [1, 2, 3, 4, 5]
        assert results[0]["pos"][0] == f"room:/:room-{tag}"
        one = publish(api, {"event": "news", "user": f"pub-{tag}", "data": "user"})
        assert one.status_code == 200 and one.json()["ok"] is True
        assert publish(api, {"event": "news", "sid": client.sid, "data": "sid"}).json()["ok"]
        assert await inbox.wait(7) == [0, 1, 2, 3, 4, "user", "sid"]
    finally:
        await client.close()


async def test_a_repeated_idempotency_key_is_delivered_once(api: Server, transport: str) -> None:
    tag = secrets.token_hex(3)
    client = await _client(api, f"idem-{tag}", transport)
    inbox = Inbox(client, "once")
    try:
        await client.join(f"idem-{tag}")
        body = {"event": "once", "room": f"idem-{tag}", "data": "a", "idempotency_key": "k1"}
        first = publish(api, body)
        again = publish(api, {**body, "data": "b"})  # same key: not published again
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        marker = publish(api, {"event": "once", "room": f"idem-{tag}", "data": "end"})
        assert marker.json()["pos"][2] == first.json()["pos"][2] + 1
        assert await inbox.wait(2) == ["a", "end"]
    finally:
        await client.close()


async def test_presence_and_history_reads(api: Server, transport: str) -> None:
    tag = secrets.token_hex(3)
    client = await _client(api, f"seen-{tag}", transport)
    try:
        await client.join(f"seen-{tag}", meta={"n": 1})
        got = httpx.get(
            api.url + "/anywire/api/presence", params={"room": f"seen-{tag}"}, headers=AUTH
        )
        assert got.status_code == 200
        body = got.json()
        assert body["count"] == 1
        assert body["members"][0]["sid"] == client.sid
        assert body["members"][0]["user"] == f"seen-{tag}"
    finally:
        await client.close()
    room = f"hist-{tag}"
    for i in range(3):
        assert publish(api, {"event": "h", "room": room, "data": i}).status_code == 200
    url = api.url + "/anywire/api/history"
    full = httpx.get(url, params={"room": room}, headers=AUTH).json()
    assert [(x["offset"], x["data"]) for x in full["items"]] == [(1, 0), (2, 1), (3, 2)]
    assert full["head"] == 3
    later = httpx.get(
        url, params={"room": room, "epoch": full["epoch"], "since": 1, "limit": 1}, headers=AUTH
    ).json()
    assert [x["data"] for x in later["items"]] == [1]
    assert later["complete"] is True and later["more"] is True
    assert full["complete"] is True and full["more"] is False
    stale = httpx.get(url, params={"room": room, "epoch": "old", "since": 2}, headers=AUTH)
    assert stale.json()["complete"] is False  # another epoch: the items start over
    assert len(stale.json()["items"]) == 3


def test_the_key_is_checked(api: Server) -> None:
    body = {"event": "x", "room": "r"}
    assert publish(api, body, {"X-API-Key": KEY}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"X-API-Key": "nope"}):
        answer = httpx.post(api.url + "/anywire/publish", json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
    presence = httpx.get(api.url + "/anywire/api/presence", params={"room": "r"})
    assert presence.status_code == 401
    assert httpx.get(api.url + "/anywire/publish", headers=AUTH).status_code == 405


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"room": "r"}, "'event' must be"),
        ({"event": "x"}, "exactly one of"),
        ({"event": "x", "room": "r", "user": "u"}, "exactly one of"),
        ({"event": "$join", "room": "r"}, "reserved"),
        ({"event": "x", "room": ""}, "'room' must be"),
        ({"event": "x", "room": "r", "ns": "chat"}, "'ns' must be"),
        ({"event": "x", "room": "r", "ns": "/$admin"}, "reserved namespace"),
        ({"event": "x", "room": "r", "extra": 1}, "unknown field(s): extra"),
        ({"event": "x", "room": "r", "idempotency_key": 5}, "'idempotency_key'"),
        ([1, 2], "must be a JSON object"),
        ({"items": []}, "'items' must be a list of 1-100"),
        ({"items": [{"event": "x", "room": "r"}] * 101}, "'items' must be a list of 1-100"),
    ],
)
def test_bad_bodies_get_a_clear_400(api: Server, body: Any, message: str) -> None:
    answer = publish(api, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_request"
    assert message in answer.json()["message"]


def test_malformed_and_oversized_bodies(api: Server) -> None:
    url = api.url + "/anywire/publish"
    bad = httpx.post(url, content=b"{not json", headers=AUTH)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["message"]
    nan = httpx.post(url, content=b'{"event":"x","room":"r","data":NaN}', headers=AUTH)
    assert nan.status_code == 400
    big = publish(api, {"event": "x", "room": "r", "data": "x" * (17 * 1024)})
    assert big.status_code == 413 and "max_frame_size" in big.json()["message"]
    huge = httpx.post(url, content=b" " * (200 * 1024), headers=AUTH)
    assert huge.status_code == 413 and huge.json()["error"] == "too_large"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("limit", "\u00b2"),  # a digit to str.isdigit(), not to int()
        ("limit", "\u0663"),  # ARABIC-INDIC THREE: int() takes it, the API does not
        ("since", "9" * 5000),  # past int()'s 4,300-digit limit
        ("since", "+5"),
        ("limit", ""),
        ("limit", "0"),
    ],
    ids=["superscript", "arabic-indic", "5000-digits", "plus", "blank", "zero"],
)
def test_bad_history_numbers_get_a_clear_400(api: Server, param: str, value: str) -> None:
    url = api.url + "/anywire/api/history"
    answer = httpx.get(url, params={"room": "r", param: value}, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert f"'{param}' must be an integer" in answer.json()["message"]


def test_a_batch_answers_each_item(api: Server) -> None:
    items = [
        {"event": "x", "room": "r"},
        {"event": "x"},
        {"event": "x", "sid": "no-such-session"},
        {"event": "x", "user": "u"},
    ]
    results = publish(api, {"items": items}).json()["results"]
    assert [r["ok"] for r in results] == [True, False, False, True]
    assert "exactly one of" in results[1]["message"]
    assert results[2]["error"] == "not_found"


def test_an_unknown_session_is_a_404(api: Server) -> None:
    answer = publish(api, {"event": "x", "sid": "no-such-session"})
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def test_off_by_default(server: Server) -> None:
    body = {"event": "x", "room": "r"}
    assert httpx.post(server.url + "/anywire/publish", json=body).status_code == 404
    assert httpx.get(server.url + "/anywire/api/presence?room=r").status_code == 404


def test_the_key_header_is_masked_in_logs() -> None:
    # websockets/httpx-style debug line "> %s: %s" with a header pair (core/redact.py).
    record = logging.LogRecord("x", logging.DEBUG, "", 0, "> %s: %s", ("X-API-Key", KEY), None)
    ScrubSecrets().filter(record)
    assert KEY not in record.getMessage()


def test_a_weak_key_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Anywire(anonymous=True, api_key="short")
    with pytest.raises(ValueError, match="printable ASCII"):
        Anywire(anonymous=True, api_key="a key with spaces in it")
