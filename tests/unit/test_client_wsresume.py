"""When the Python client may resume over the WebSocket without negotiate, and how it
reads a refusal's wait (anywire/clients/python/wsresume.py, protocol section 2.2.1)."""

from __future__ import annotations

from typing import Any

from anywire.clients.python import Client
from anywire.clients.python.wire import Negotiated
from anywire.clients.python.wsresume import can_resume_directly, retry_after_in
from anywire.server.wsresume import retry_reason


def _answer(**extra: Any) -> Negotiated:
    return Negotiated.parse({
        "sid": "s1", "token": "tok", "ticket": "tik", "codec": "json",
        "transports": [{"name": "websocket", "url": "/anywire/ws"},
                       {"name": "sse", "url": "/anywire/sse"}],
        **extra,
    })  # fmt: skip


def _client(neg: Negotiated | None, last: str | None = "websocket", **options: Any) -> Client:
    client = Client("http://127.0.0.1:1", "t", **options)
    client._neg = neg
    client.peer.sid = None if neg is None else neg.sid
    client.fallback.last = last
    return client


def test_only_a_server_that_says_so_is_resumed_without_negotiate() -> None:
    assert _answer().ws_resume is False  # an older server says nothing
    assert _answer(ws_resume=True).ws_resume is True
    assert _answer(ws_resume="yes").ws_resume is False
    assert can_resume_directly(_client(_answer(ws_resume=True)))
    assert not can_resume_directly(_client(_answer()))  # older server: negotiate
    assert not can_resume_directly(_client(None))  # no session yet
    assert not can_resume_directly(_client(_answer(ws_resume=True), last="sse"))
    assert not can_resume_directly(_client(_answer(ws_resume=True), ws_resume=False))
    # A client that wants another ping interval (idle cuts, the heartbeat option) than
    # the one it was granted must negotiate: only negotiate can ask for one.
    assert not can_resume_directly(_client(_answer(ws_resume=True), heartbeat=1.0))
    granted = _answer(ws_resume=True, ping_interval=1000)
    assert can_resume_directly(_client(granted, heartbeat=1.0))


def test_the_wait_a_refusal_asks_for_is_read_from_its_reason() -> None:
    assert retry_after_in("too many negotiations from this address; retry_after=3") == 3.0
    assert retry_after_in(retry_reason("busy", 0.2)) == 1.0  # at least a second
    assert retry_after_in(retry_reason("x" * 300, 12.5)) == 13.0  # cut, never the number
    assert len(retry_reason("x" * 300, 12.5)) <= 120
    assert retry_after_in("server shutting down") is None
    assert retry_after_in("retry_after=3 and more") is None
    assert retry_after_in("retry_after=99999999") is None  # not a number we take
    assert retry_after_in("retry_after=999999") == 600.0  # at most MAX_RETRY_AFTER
