"""The browser through real nginx configured as a restrictive intermediary (the same
configurations as ``tests/proxies``): the page is loaded through the proxy, so every
request of the client crosses it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.conftest import TRANSPORTS, Server
from tests.proxies.nginx import Nginx, proxy_test_server, restrictive_proxies

from .conftest import APP, WAIT_MS, load, wait
from .drive import js, open_socket, wait_events

ALL = ["websocket", "sse", "longpoll"]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = proxy_test_server(APP)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxies(server: Server) -> Iterator[dict[str, Nginx]]:
    with restrictive_proxies(server.port) as started:
        yield started


def _flow(context: BrowserContext, url: str, user: str, **options: object) -> str:
    page = load(context, url)
    open_socket(page, "a", user, ("n",), **options)
    assert js(page, "h.call('a', 'echo', 'through')") == "through"
    js(page, "h.call('a', 'burst', {n: 100})")
    assert wait_events(page, "a", "n", 100) == list(range(100))
    return str(js(page, "h.socket('a').transport"))


def test_stripped_upgrade_lands_on_sse(context: BrowserContext, proxies: dict[str, Nginx]) -> None:
    url = proxies["ws-blocked"].url
    assert _flow(context, url, "px-ws", transports=ALL, connectTimeout=3000) == "sse"


def test_buffered_stream_falls_back_to_longpoll(
    context: BrowserContext, proxies: dict[str, Nginx]
) -> None:
    url = proxies["buffering"].url
    options = {"transports": ["sse", "longpoll"], "connectTimeout": 3000}
    assert _flow(context, url, "px-buf", **options) == "longpoll"


SILENCE_MS = 8000  # longer than the short-idle proxy's 5 s read timeout


@pytest.fixture(scope="module")
def silent_pages(browser: Browser, proxies: dict[str, Nginx]) -> Iterator[dict[str, Page]]:
    """One page per transport through the short-idle proxy, opened together and left
    silent together (each in its own context; nginx times out each connection on its
    own): one silent window instead of three. Each page records when it opened; each
    test closes its own page's context when done, so that its session is gone before
    the held-back test counts the server's sessions."""
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    try:
        for transport in TRANSPORTS:
            contexts.append(browser.new_context())
            contexts[-1].set_default_timeout(WAIT_MS)
            page = load(contexts[-1], proxies["short-idle"].url)
            open_socket(page, "a", f"px-idle-{transport}", ("n",), transports=[transport])
            js(page, "window.opened = performance.now()")
            pages[transport] = page
        yield pages
    finally:
        for context in contexts:
            context.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_short_idle_timeout_is_outlived(silent_pages: dict[str, Page], transport: str) -> None:
    page = silent_pages[transport]
    try:
        _outlives_short_idle(page)
    finally:
        page.context.close()


def _outlives_short_idle(page: Page) -> None:
    assert js(page, "document.visibilityState") == "visible"  # timers run unthrottled
    # The stimulus is silence itself: 8 s without application traffic since the socket
    # connected, longer than the proxy's 5 s read timeout (timed on the page's clock).
    # Only heartbeats and the poll window keep the link open.
    wait(page, "performance.now() >= window.opened + arg", SILENCE_MS,
         timeout=SILENCE_MS + WAIT_MS)  # fmt: skip
    assert js(page, "h.s.a.states") == ["connecting", "connected"]
    js(page, "h.call('a', 'burst', {n: 100})")
    assert wait_events(page, "a", "n", 100) == list(range(100))
    for i in range(30):
        js(page, "h.emit('a', 'record', arg)", i)
    assert js(page, "h.call('a', 'recorded')") == list(range(30))
    assert js(page, "h.s.a.states") == ["connecting", "connected"]


def test_held_back_stream_is_raced_past_and_released(
    context: BrowserContext, proxies: dict[str, Nginx], server: Server
) -> None:
    """Racing (racing.js) through the buffering proxy: long-poll's first message within
    1 s, and the held-back event stream's session (the server has it) ended at once by
    the loser's goodbye, not kept for the resume window (3 s)."""
    # Sessions an earlier test of this module left to expire are gone first (bounded), so
    # the count below is this test's alone, whatever ran before it.
    start = time.monotonic()
    while httpx.get(server.url + "/anywire/metrics").json()["sessions"] != 0:
        assert time.monotonic() - start < 10, "sessions of earlier tests never ended"
        time.sleep(0.05)
    page = load(context, proxies["buffering"].url)
    first = js(page, """(async () => {
      const t0 = performance.now();
      h.open('a', 'px-race', {transports: ['sse', 'longpoll'], upgrade: false});
      await h.socket('a').ready();
      await h.call('a', 'echo', 'first');
      return performance.now() - t0;
    })()""")  # fmt: skip
    assert js(page, "h.socket('a').transport") == "longpoll"
    start = time.monotonic()
    while httpx.get(server.url + "/anywire/metrics").json()["sessions"] != 1:
        assert time.monotonic() - start < 1.5, "the losing stream's session was kept"
        time.sleep(0.02)
    print(f"\nChromium, buffering nginx: long-poll first message {first:.0f} ms, held-back "
          f"SSE session ended {time.monotonic() - start:.3f} s later")  # fmt: skip
    assert first < 1000, first
