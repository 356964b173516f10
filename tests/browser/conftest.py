"""Real headless Chromium (Debian's, driven by Playwright) against real uvicorn.

One Chromium for the whole package (launching it costs ~1.3 s, once instead of once per
module) and one server per test module; each test gets a fresh browser context (its own
storage, cookies and network emulation) with the harness page loaded, so nothing of one
test reaches another through the shared browser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.conftest import Server, start_server
from tests.tools import chromium_path

# ANYWIRE_CHROMIUM overrides it (Ubuntu: /snap/bin/chromium): tests/tools.py
CHROMIUM = chromium_path()
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Only loopback resolves: a test can never reach out of the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]  # fmt: skip
APP = "tests.browser.app:app"
WAIT_MS = 15_000
expect.set_options(timeout=WAIT_MS)


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium with the suite's binary and flags, closed on the way out (for
    every module that drives one: browser, proxies, doctor)."""
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({}, app=APP)
    yield srv
    srv.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    ctx.set_default_timeout(WAIT_MS)
    yield ctx
    ctx.close()


def load(context: BrowserContext, url: str) -> Page:
    """A new tab on the harness page at ``url``, ready to drive."""
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_function("document.body.dataset.ready === '1'")
    return page


@pytest.fixture
def page(context: BrowserContext, server: Server) -> Page:
    return load(context, server.url)


def wait(page: Page, condition: str, arg: object = None, timeout: int = WAIT_MS) -> object:
    """Wait until the JS expression ``condition`` (may use ``arg``) is truthy; bounded."""
    handle = page.wait_for_function(f"(arg) => {condition}", arg=arg, timeout=timeout)
    return handle.json_value()


Opener = Callable[..., None]
