"""The browser client's in-band token refresh in real Chromium, on every transport: with
5 s tokens, one session outlives its first token by refreshing (``auth`` frames), without
a reconnect and without losing a frame."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import TRANSPORTS

from .conftest import wait
from .drive import js, open_socket


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refresh_keeps_the_session_past_the_first_token(page: Page, transport: str) -> None:
    user = f"refresh-{transport}"
    open_socket(page, "a", user, transports=[transport], tokenTtl=5)
    sid = js(page, "h.socket('a').sid")
    # One `record` every 50 ms while the refreshes happen (each token lives 4-5 s).
    js(page, "(h.n = 0, h.timer = setInterval(() => h.emit('a', 'record', h.n++), 50), true)")
    wait(page, "h.socket('a').refresher.refreshed >= 2", timeout=25_000)
    sent = js(page, "(clearInterval(h.timer), h.n)")
    assert js(page, "h.call('a', 'recorded', null)") == list(range(sent))
    assert js(page, "h.socket('a').sid") == sid
    assert js(page, "h.s.a.states") == ["connecting", "connected"]  # never reconnected
    assert js(page, "h.s.a.transports") == [transport]
    assert js(page, "h.s.a.tokens") >= 3  # the negotiate's, then one per refresh
