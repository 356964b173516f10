"""The browser client's in-band token refresh in real Chromium, on every transport: with
5 s tokens, one session outlives its first token by refreshing (``auth`` frames), without
a reconnect and without losing a frame.

The three transports' pages refresh at the same time (each in its own context, as its own
user): their token lifetimes pass once instead of three times."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.conftest import TRANSPORTS, Server

from .conftest import WAIT_MS, load, wait
from .drive import js, open_socket

# Run alone (scripts/test's second phase): each page must refresh its 5 s token in time;
# side by side (load ~5) the SSE page refreshed too late and reconnected.
pytestmark = pytest.mark.alone


@pytest.fixture(scope="module")
def refreshing(browser: Browser, server: Server) -> Iterator[dict[str, tuple[Page, str]]]:
    """Each transport's page with its socket open on 5 s tokens and sending a `record`
    every 50 ms; yields each page with its socket's first session id."""
    contexts: list[BrowserContext] = []
    pages: dict[str, tuple[Page, str]] = {}
    try:
        for transport in TRANSPORTS:
            contexts.append(browser.new_context())
            contexts[-1].set_default_timeout(WAIT_MS)
            page = load(contexts[-1], server.url)
            open_socket(page, "a", f"refresh-{transport}", transports=[transport], tokenTtl=5)
            sid = js(page, "h.socket('a').sid")
            # One `record` every 50 ms while the refreshes happen (each token lives 4-5 s).
            js(
                page,
                "(h.n = 0, h.timer = setInterval(() => h.emit('a', 'record', h.n++), 50), true)",
            )
            pages[transport] = (page, sid)
        yield pages
    finally:
        for context in contexts:
            context.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refresh_keeps_the_session_past_the_first_token(
    refreshing: dict[str, tuple[Page, str]], transport: str
) -> None:
    page, sid = refreshing[transport]
    assert js(page, "document.visibilityState") == "visible"  # timers run unthrottled
    wait(page, "h.socket('a').refresher.refreshed >= 2", timeout=25_000)
    sent = js(page, "(clearInterval(h.timer), h.n)")
    assert js(page, "h.call('a', 'recorded', null)") == list(range(sent))
    assert js(page, "h.socket('a').sid") == sid
    assert js(page, "h.s.a.states") == ["connecting", "connected"]  # never reconnected
    assert js(page, "h.s.a.transports") == [transport]
    assert js(page, "h.s.a.tokens") >= 3  # the negotiate's, then one per refresh
