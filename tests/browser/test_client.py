"""The browser client in real Chromium, on every transport: connect, acks both ways,
rooms and presence, errors."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import TRANSPORTS

from .drive import error_name, events, js, open_socket, wait_events


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_connects_and_round_trips(page: Page, transport: str, codec: str) -> None:
    open_socket(page, "a", f"rt-{transport}", transports=[transport], codec=codec)
    assert js(page, "h.socket('a').transport") == transport
    value = {"text": "héllo ✓", "n": [1, 2.5, None, True], "deep": {"k": "v"}}
    assert js(page, "h.call('a', 'echo', arg)", value) == value
    assert js(page, "h.socket('a').sid")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rooms_presence_and_order(page: Page, transport: str) -> None:
    room = f"room-{transport}"
    open_socket(page, "a", f"alice-{transport}", ("news", "$join"), transports=[transport])
    open_socket(page, "b", f"bob-{transport}", ("news",), transports=[transport])
    joined = js(page, "h.join('a', arg, {meta: {color: 'red'}})", room)
    assert [m["user"] for m in joined["presence"]] == [f"alice-{transport}"]
    joined = js(page, "h.join('b', arg)", room)
    assert {m["user"] for m in joined["presence"]} == {f"alice-{transport}", f"bob-{transport}"}
    assert wait_events(page, "a", "$join", 1)[0]["user"] == f"bob-{transport}"
    for i in range(100):
        js(page, "h.emit('a', 'to_room', arg)", {"room": room, "event": "news", "data": i,
                                                 "skip_self": True})  # fmt: skip
    assert wait_events(page, "b", "news", 100) == list(range(100))
    js(page, "h.call('a', 'echo', 'sync')")  # every emit above has been handled
    assert events(page, "a", "news") == []  # the sender was skipped


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_acks_both_ways_and_errors(page: Page, transport: str) -> None:
    open_socket(page, "a", f"acks-{transport}", ("question",), transports=[transport])
    # the server calls the browser and gets the handler's return value back
    answer = js(page, "h.call('a', 'ask', {event: 'question', data: {q: 42}})")
    assert answer == {"reply": {"q": 42}}
    assert error_name(page, "a", "fail", None) == "AckError"
    assert error_name(page, "a", "sleep", 3, timeout=300) == "AckTimeout"
    # the socket is still fine after both errors
    assert js(page, "h.call('a', 'echo', 7)") == 7
