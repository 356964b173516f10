"""The server HTTP API, continued (issue #15): publishing to everyone in a namespace
(``"all": true``), several keys valid at once (rotation), and each key's rate limit.
Real ``anywire serve`` processes, real clients on every transport, plain httpx."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client
from anywire.server.apikeys import ApiKeys, parse_keys
from anywire.server.app import Anywire

from ..bucket import allowance, at_once
from .conftest import Server, make_token, start_server
from .test_publish_api import Inbox, _client

OLD = "old-api-key-" + secrets.token_hex(8)
NEW = "new-api-key-" + secrets.token_hex(8)
OTHER = "other-api-key-" + secrets.token_hex(8)
API_RATE, API_BURST = 5, 10  # the limited server's budget per key: 5 a second, 10 at once


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def publish(server: Server, body: Any, key: str) -> httpx.Response:
    return httpx.post(server.url + "/anywire/publish", json=body, headers=_auth(key))


@pytest.fixture(scope="module")
def rotating() -> Iterator[Server]:
    """Mid-rotation: the old and the new key both valid (given twice on the CLI)."""
    srv = start_server({}, args=("--api-key", OLD, "--api-key", NEW))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def rotated() -> Iterator[Server]:
    """After the rotation: only the new key (as the environment variable)."""
    srv = start_server({"ANYWIRE_API_KEY": NEW})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def limited() -> Iterator[Server]:
    """Two keys with a small budget each: 10 at once, 5 per second."""
    env = {"ANYWIRE_API_KEY": f"{OLD},{OTHER}", "AW_API_RATE": str(API_RATE),
           "AW_API_BURST": str(API_BURST)}  # fmt: skip
    srv = start_server(env)
    yield srv
    srv.stop()


# -- everyone in a namespace ------------------------------------------------------------
async def test_all_reaches_every_session_of_the_namespace_only(
    rotating: Server, transport: str
) -> None:
    tag = secrets.token_hex(3)
    one = await _client(rotating, f"all-a-{tag}", transport)
    two = await _client(rotating, f"all-b-{tag}", transport)
    elsewhere = Client(
        rotating.url, make_token(f"all-c-{tag}"), transports=(transport,), namespace="/other"
    )
    await elsewhere.connect()
    inboxes = [Inbox(c, "notice") for c in (one, two, elsewhere)]
    try:
        answer = publish(rotating, {"event": "notice", "all": True, "data": tag}, NEW)
        assert answer.status_code == 200, answer.text
        batch = [{"event": "notice", "all": True, "data": i} for i in range(3)]
        assert publish(rotating, {"items": batch}, OLD).status_code == 200
        # The same event to /other, last: once it has arrived there, /'s are in too.
        to_other = {"event": "notice", "all": True, "ns": "/other", "data": "other"}
        assert publish(rotating, to_other, NEW).status_code == 200
        assert await inboxes[2].wait(1) == ["other"]
        assert await inboxes[0].wait(4) == [tag, 0, 1, 2]
        assert await inboxes[1].wait(4) == [tag, 0, 1, 2]
        assert inboxes[2].items == ["other"]  # nothing of "/" reached "/other"
    finally:
        for c in (one, two, elsewhere):
            await c.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event": "x", "all": True, "room": "r"}, "exactly one of"),
        ({"event": "x", "all": True, "user": "u"}, "exactly one of"),
        ({"event": "x", "all": True, "sid": "s"}, "exactly one of"),
        ({"event": "x", "all": False}, "'all' must be true"),
        ({"event": "x", "all": "yes"}, "'all' must be true"),
        ({"event": "x", "all": 1}, "'all' must be true"),
    ],
)
def test_all_is_exclusive_and_explicit(rotating: Server, body: Any, message: str) -> None:
    answer = publish(rotating, body, NEW)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_request"
    assert message in answer.json()["message"]


# -- several keys -------------------------------------------------------------------------
def test_old_and_new_keys_both_work_during_a_rotation(rotating: Server) -> None:
    for key in (OLD, NEW):
        assert publish(rotating, {"event": "x", "room": "r"}, key).status_code == 200
        by_header = httpx.post(
            rotating.url + "/anywire/publish",
            json={"event": "x", "room": "r"},
            headers={"X-API-Key": key},
        )
        assert by_header.status_code == 200


def test_a_removed_key_gets_the_uniform_401(rotated: Server) -> None:
    assert publish(rotated, {"event": "x", "room": "r"}, NEW).status_code == 200
    removed = publish(rotated, {"event": "x", "room": "r"}, OLD)
    wrong = publish(rotated, {"event": "x", "room": "r"}, "x" * len(OLD))
    missing = httpx.post(rotated.url + "/anywire/publish", json={"event": "x", "room": "r"})
    assert removed.status_code == wrong.status_code == missing.status_code == 401
    assert removed.json() == wrong.json() == missing.json()
    assert removed.json()["error"] == "unauthorized"
    # A prefix of a valid key, or two keys glued, are not keys.
    assert publish(rotated, {"event": "x", "room": "r"}, NEW[:-1]).status_code == 401
    assert publish(rotated, {"event": "x", "room": "r"}, f"{NEW},{OLD}").status_code == 401


def test_key_lists_are_checked_at_startup() -> None:
    assert parse_keys(f"{OLD}, {NEW}") == [OLD, NEW]
    assert parse_keys([OLD, NEW]) == [OLD, NEW]
    with pytest.raises(ValueError, match="at least 16"):
        parse_keys(f"{OLD},short")
    with pytest.raises(ValueError, match="at least 16"):
        parse_keys(f"{OLD},")  # an empty entry
    with pytest.raises(ValueError, match="listed twice"):
        parse_keys([OLD, OLD])
    with pytest.raises(ValueError, match="must not contain ','"):
        parse_keys([f"{OLD},{NEW}"])
    with pytest.raises(ValueError, match="at least one"):
        parse_keys([])
    aw = Anywire(anonymous=True, api_key=[OLD, NEW])
    assert aw.api is not None and aw.api.keys.match(NEW) == 1
    assert OLD not in repr(aw.api.keys) and OLD not in " ".join(aw.api.keys.names)


def test_keys_never_show_in_the_server_log(rotating: Server, limited: Server) -> None:
    publish(rotating, {"event": "x", "room": "r"}, "bad-key-0123456789")
    for server in (rotating, limited):
        text = server.log.read_text(errors="replace")
        assert OLD not in text and NEW not in text and OTHER not in text


# -- the rate limit -------------------------------------------------------------------------
# Alone (scripts/test's second phase): the budget refills at 5/s; side by side the requests
# were slow enough to earn the single publish a token (200, not 429).
@pytest.mark.alone
def test_a_key_over_its_rate_gets_429_and_nothing_is_published(limited: Server) -> None:
    room = f"rate-{secrets.token_hex(3)}"
    items = [{"event": "r", "room": room, "data": i} for i in range(10)]
    first = publish(limited, {"items": items}, OLD)  # the whole budget, per item
    assert first.status_code == 200, first.text
    refused = publish(limited, {"items": items[:3]}, OLD)
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "rate_limited" and body["code"] == 4008
    assert "nothing was done" in body["message"] and "per item" in body["message"]
    assert 0 < body["retry_after"] <= 10 / 5 + 0.01  # at most the debt at 5/s
    assert refused.headers["retry-after"] == str(max(1, math.ceil(body["retry_after"])))
    single = publish(limited, {"event": "r", "room": room, "data": "single"}, OLD)
    assert single.status_code == 429
    # A body that is not JSON is refused before the budget is looked at: the backend
    # learns what is wrong with it rather than to retry it later.
    bad = httpx.post(limited.url + "/anywire/publish", content=b"{oops", headers=_auth(OLD))
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["message"]
    # The other key has its own budget: its read shows none of the refused publishes.
    history = httpx.get(
        limited.url + "/anywire/api/history", params={"room": room}, headers=_auth(OTHER)
    )
    assert history.status_code == 200
    assert [x["data"] for x in history.json()["items"]] == list(range(10))
    # A backend that waits for Retry-After gets through.
    wait = publish(limited, {"event": "r", "room": room}, OLD).json()["retry_after"]
    time.sleep(wait)  # the behaviour under test: honouring Retry-After
    after = publish(limited, {"event": "r", "room": room, "data": "late"}, OLD)
    assert after.status_code == 200, after.text


def test_reads_pay_too_and_the_log_names_the_key_not_its_value(limited: Server) -> None:
    url = limited.url + "/anywire/api/presence"

    def read() -> int:
        return httpx.get(url, params={"room": "r"}, headers=_auth(OTHER), timeout=10).status_code

    # Together, so that they outpace the refill however slow the machine (tests/bucket.py):
    # one after another at load ~15 the 5/s budget refilled faster than 40 reads came.
    codes, took = at_once(read, API_BURST + 10)
    ok = codes.count(200)
    assert API_BURST <= ok <= allowance(API_BURST, API_RATE, took), (codes, took)
    assert 429 in codes and codes.count(429) == len(codes) - ok, (codes, took)
    text = limited.log.read_text(errors="replace")
    assert "over its rate" in text and OTHER not in text


def test_buckets_are_per_key() -> None:
    keys = ApiKeys([OLD, NEW], rate=1.0, burst=2)
    assert keys.charge(0, 2, now=0.0) == 0.0
    assert keys.charge(0, 1, now=0.0) > 0  # refused (and charged: debt)
    assert keys.charge(1, 2, now=0.0) == 0.0  # the other key: untouched
    assert keys.charge(0, 1, now=1.0) > 0  # still in debt after 1 s
    assert keys.charge(0, 1, now=3.0) == 0.0  # the debt paid off, and a token more
