"""The browser client never trips the flood limit by normal use (issue #13, item 7): a
plain loop of 10,000 emits is paced to the budget the server advertises (pacer.js) and
delivered whole, on every transport, without a single 4008. The three transports' pages
emit at the same time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.conftest import TRANSPORTS, Server, start_server

from .conftest import APP, WAIT_MS, load
from .drive import js, open_socket


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A budget of 2,000 tokens a second, 1,000 at once: 10,000 frames sent as fast as
    the socket can would be closed with 4008 within a second."""
    srv = start_server({"AW_FLOOD_RATE": "2000", "AW_FLOOD_BURST": "1000"}, app=APP)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def emitting(browser: Browser, server: Server) -> Iterator[dict[str, tuple[Page, float]]]:
    """Each transport's page (own context and user; each session its own budget) with
    its 10,000 emits queued, all at once: their paced deliveries (~5 s each, mostly
    waiting on the budget) overlap. Yields each page with the moment it started."""
    contexts: list[BrowserContext] = []
    pages: dict[str, tuple[Page, float]] = {}
    try:
        for transport in TRANSPORTS:
            contexts.append(browser.new_context())
            contexts[-1].set_default_timeout(WAIT_MS)
            page = load(contexts[-1], server.url)
            open_socket(page, "a", f"budget-{transport}", transports=[transport],
                        maxQueue=20_000)  # fmt: skip
            started = js(page, "Date.now()")
            js(page, "{ for (let i = 0; i < 10000; i++) h.emit('a', 'record', i); return true; }")
            pages[transport] = (page, started)
        yield pages
    finally:
        for context in contexts:
            context.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ten_thousand_emits_are_paced_not_killed(
    emitting: dict[str, tuple[Page, float]], transport: str
) -> None:
    page, started = emitting[transport]
    assert js(page, "document.visibilityState") == "visible"  # timers run unthrottled
    recorded = js(page, "h.call('a', 'recorded', null, {timeout: 60000})")
    elapsed = (js(page, "Date.now()") - started) / 1000
    socket = js(page, "({s: h.s.a.states, close: h.socket('a').lastClose, "
                      "waited: h.socket('a').pacer.waited})")  # fmt: skip
    print(f"\n{transport}: 10000 emits delivered in {elapsed:.2f} s, paced "
          f"{socket['waited'] / 1000:.2f} s, states {socket['s']}")  # fmt: skip
    assert recorded == list(range(10_000))  # all of them, in order, once
    assert socket["close"] is None and "reconnecting" not in socket["s"]  # never closed
    assert socket["waited"] > 0  # slowed: 10,000 frames exceed the burst by far
