"""The browser client never trips the flood limit by normal use (issue #13, item 7): a
plain loop of 10,000 emits is paced to the budget the server advertises (pacer.js) and
delivered whole, on every transport, without a single 4008."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import TRANSPORTS, Server, start_server

from .conftest import APP
from .drive import js, open_socket


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A budget of 2,000 tokens a second, 1,000 at once: 10,000 frames sent as fast as
    the socket can would be closed with 4008 within a second."""
    srv = start_server({"AW_FLOOD_RATE": "2000", "AW_FLOOD_BURST": "1000"}, app=APP)
    yield srv
    srv.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ten_thousand_emits_are_paced_not_killed(page: Page, transport: str) -> None:
    user = f"budget-{transport}"
    open_socket(page, "a", user, transports=[transport], maxQueue=20_000)
    started = js(page, "Date.now()")
    js(page, "{ for (let i = 0; i < 10000; i++) h.emit('a', 'record', i); return true; }")
    recorded = js(page, "h.call('a', 'recorded', null, {timeout: 60000})")
    elapsed = (js(page, "Date.now()") - started) / 1000
    socket = js(page, "({s: h.s.a.states, close: h.socket('a').lastClose, "
                      "waited: h.socket('a').pacer.waited})")  # fmt: skip
    print(f"\n{transport}: 10000 emits delivered in {elapsed:.2f} s, paced "
          f"{socket['waited'] / 1000:.2f} s, states {socket['s']}")  # fmt: skip
    assert recorded == list(range(10_000))  # all of them, in order, once
    assert socket["close"] is None and "reconnecting" not in socket["s"]  # never closed
    assert socket["waited"] > 0  # slowed: 10,000 frames exceed the burst by far
