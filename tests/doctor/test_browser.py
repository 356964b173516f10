"""The doctor's page (``/anywire/doctor``) in real headless Chromium: directly, where all
three transports work, and behind the buffering nginx of tests/proxies, where the event
stream is held back. The test clicks "Copy" and reads the clipboard: what a user would
send to support."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import WAIT_MS, chromium
from tests.e2e.conftest import Server, start_server
from tests.proxies.nginx import Nginx, start_nginx

BUFFERED = "a proxy buffers event streams: clients that cannot use WebSocket will use long-polling"
BUFFERED_LINE = "- " + BUFFERED

QUERY = "?holds=1&timeout=2"


@pytest.fixture(scope="module")
def sites() -> Iterator[dict[str, str]]:
    server: Server | None = None
    nginx: Nginx | None = None
    try:
        server = start_server({}, args=("--doctor",))
        nginx = start_nginx("buffering", server.port)
        yield {"direct": server.url, "buffering": nginx.url}
    finally:
        if nginx is not None:
            nginx.stop()
        if server is not None:
            server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def copied_report(browser: Browser, url: str) -> str:
    """Open the doctor page at ``url``, wait for its verdict, press Copy; the clipboard."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        page.goto(url + "/anywire/doctor" + QUERY)
        page.wait_for_function("document.body.dataset.done === '1'")
        page.click("#copy")
        page.wait_for_function("document.getElementById('copied').textContent === 'copied'")
        text = str(page.evaluate("navigator.clipboard.readText()"))
        assert page.locator("#table tbody tr").count() == 4  # three transports, the headers
        assert text.strip() == page.inner_text("#report").strip()  # what the page shows
        return text
    finally:
        context.close()


def _rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines()[2:6]}


def test_direct_all_three_work(browser: Browser, sites: dict[str, str]) -> None:
    text = copied_report(browser, sites["direct"])
    rows = _rows(text)
    assert text.startswith(f"anywire doctor: {sites['direct']}/anywire from Mozilla/")
    assert [rows[n][1] for n in ("websocket", "sse", "longpoll", "headers")] == ["works"] * 4
    assert "clients will use: WebSocket" in text
    assert "- all three transports work from here" in text
    assert '"doctor":true' in text  # the facts travel with the report


def test_behind_buffering_nginx(browser: Browser, sites: dict[str, str]) -> None:
    text = copied_report(browser, sites["buffering"])
    rows = _rows(text)
    assert [rows[n][1] for n in ("websocket", "sse", "longpoll")] == ["works", "fails", "works"]
    assert "first event held back for" in " ".join(rows["sse"])
    assert BUFFERED_LINE in text
    assert "clients will use: WebSocket" in text
