"""The browser client behind a TCP proxy (tests/netfault.py) that misbehaves like
restrictive networks do, on every transport, in real Chromium. The page itself is
loaded through the proxy (same origin).

* half-open: the proxy black-holes every byte; a send must end the connection within
  ping_timeout (2 s), not after ping_interval + ping_timeout (22 s), and the socket
  resumes once the path is back with every event recorded once;
* idle cut: the proxy closes connections idle for 3 s while the server pings every 20 s
  (and holds polls 20 s);
  the socket churns on the first cuts, then asks for a shorter heartbeat and stops.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.e2e.conftest import TRANSPORTS, Server, start_server
from tests.netfault import FaultProxy

from .conftest import APP, load, wait
from .drive import js, open_socket

PING_TIMEOUT_MS = 2000


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server(
        {
            "AW_PING_INTERVAL": "20",
            "AW_PING_TIMEOUT": str(PING_TIMEOUT_MS / 1000),
            "AW_MIN_PING_INTERVAL": "1",
            "AW_POLL_WINDOW": "20",
            "AW_RESUME_WINDOW": "30",
        },
        app=APP,
    )
    yield srv
    srv.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_half_open_path_is_noticed_after_a_send(
    context: BrowserContext, server: Server, transport: str
) -> None:
    proxy = FaultProxy(server.port)
    try:
        page: Page = load(context, proxy.url)
        open_socket(
            page, "a", f"halfopen-{transport}", transports=[transport], upgrade=False,
            backoffBase=50, backoffMax=200,
        )  # fmt: skip
        for i in range(5):
            js(page, "h.emit('a', 'record', arg)", i)
        assert js(page, "h.call('a', 'recorded')") == list(range(5))
        proxy.set("blackhole")
        sent = time.monotonic()
        js(page, "h.emit('a', 'record', 5)")  # swallowed; resent after the resume
        wait(page, "h.socket('a').state !== 'connected'", timeout=PING_TIMEOUT_MS + 3000)
        detected = time.monotonic() - sent
        print(f"\nbrowser {transport}: half-open path noticed {detected:.2f} s after the send")
        assert detected <= PING_TIMEOUT_MS / 1000 + 1.0
        proxy.set("forward")
        wait(page, "h.socket('a').state === 'connected'")
        for i in range(6, 10):
            js(page, "h.emit('a', 'record', arg)", i)
        assert js(page, "h.call('a', 'recorded')") == list(range(10))
    finally:
        proxy.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_socket_stops_churning_under_a_short_idle_cut(
    context: BrowserContext, server: Server, transport: str
) -> None:
    proxy = FaultProxy(server.port, idle_cut=3.0)
    try:
        page: Page = load(context, proxy.url)
        open_socket(
            page, "a", f"idlecut-{transport}", transports=[transport], upgrade=False,
            backoffBase=50, backoffMax=200,
        )  # fmt: skip
        assert js(page, "h.socket('a').stats.pingInterval") == 20_000
        page.wait_for_timeout(20_000)  # the window under test, not a synchronisation
        states = js(page, "h.s.a.states")
        stats = js(page, "h.socket('a').stats")
        reconnects = states.count("reconnecting")
        print(f"\nbrowser {transport}: {reconnects} reconnects in 20 s; {stats}")
        assert 2 <= reconnects <= 4
        assert 1000 <= stats["pingInterval"] < 3000  # shorter than the cut, within bounds
        # No churn once the shorter heartbeat runs: the last 8 s saw no reconnect.
        before = reconnects
        page.wait_for_timeout(8_000)
        assert js(page, "h.s.a.states").count("reconnecting") == before
        assert js(page, "h.call('a', 'echo', {n: 1})") == {"n": 1}
    finally:
        proxy.close()
