"""Network loss in the browser (Playwright's network emulation), on every transport:
messages sent while offline are queued and arrive after reconnection, once each."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.e2e.conftest import TRANSPORTS

from .conftest import wait
from .drive import js, open_socket, wait_events


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_offline_messages_arrive_once_after_reconnection(
    context: BrowserContext, page: Page, transport: str
) -> None:
    user = f"offline-{transport}"
    open_socket(page, "a", user, ("n",), transports=[transport], backoffMax=1000)
    for i in range(20):
        js(page, "h.emit('a', 'record', arg)", i)
    context.set_offline(True)
    # the page hears `offline` and stops pretending to be connected
    wait(page, "h.socket('a').state !== 'connected'")
    for i in range(20, 60):
        js(page, "h.emit('a', 'record', arg)", i)
    context.set_offline(False)
    # `online` reconnects promptly (not after a long backoff) and the queue drains
    wait(page, "h.socket('a').state === 'connected'", timeout=8000)
    assert js(page, "h.call('a', 'recorded')") == list(range(60))
    # and the way back works too
    js(page, "h.call('a', 'burst', {n: 50})")
    assert wait_events(page, "a", "n", 50) == list(range(50))
