"""The browser client behind a TCP proxy (tests/netfault.py) that misbehaves like
restrictive networks do, on every transport, in real Chromium. The page itself is
loaded through the proxy (same origin).

* half-open: the proxy black-holes every byte; a send must end the connection within
  ping_timeout (2 s), not after ping_interval + ping_timeout (22 s), and the socket
  resumes once the path is back with every event recorded once;
* idle cut: the proxy closes connections idle for 3 s while the server pings every 20 s
  (and holds polls 20 s);
  the socket churns on the first cuts, then asks for a shorter heartbeat and stops.

In both, the three transports' pages run at the same time, each through its own proxy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.e2e.conftest import TRANSPORTS, Server, start_server
from tests.netfault import FaultProxy

from .conftest import APP, WAIT_MS, load, wait
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


@pytest.fixture(scope="module")
def half_open_pages(browser: Browser, server: Server) -> Iterator[dict[str, tuple[Page, float]]]:
    """One page per transport, each through its own proxy and in its own context, opened
    together and black-holed together: the three waits for the notice (~2 s each) share
    one window. Yields each page with how long after its own send it was seen to notice
    (seen from here, after the pages before it: an upper bound on its own time)."""
    proxies: dict[str, FaultProxy] = {}
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    try:
        for transport in TRANSPORTS:
            proxies[transport] = FaultProxy(server.port)
            contexts.append(browser.new_context())
            contexts[-1].set_default_timeout(WAIT_MS)
            page = pages[transport] = load(contexts[-1], proxies[transport].url)
            open_socket(
                page, "a", f"halfopen-{transport}", transports=[transport], upgrade=False,
                backoffBase=50, backoffMax=200,
            )  # fmt: skip
            for i in range(5):
                js(page, "h.emit('a', 'record', arg)", i)
            assert js(page, "h.call('a', 'recorded')") == list(range(5))
        sent: dict[str, float] = {}
        for transport, page in pages.items():
            proxies[transport].set("blackhole")
            sent[transport] = time.monotonic()
            js(page, "h.emit('a', 'record', 5)")  # swallowed; resent after the resume
        detected: dict[str, tuple[Page, float]] = {}
        for transport, page in pages.items():
            left = sent[transport] + (PING_TIMEOUT_MS + 3000) / 1000 - time.monotonic()
            wait(page, "h.socket('a').state !== 'connected'", timeout=max(50, int(left * 1000)))
            detected[transport] = (page, time.monotonic() - sent[transport])
            proxies[transport].set("forward")
        yield detected
    finally:
        for context in contexts:
            context.close()
        for proxy in proxies.values():
            proxy.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_half_open_path_is_noticed_after_a_send(
    half_open_pages: dict[str, tuple[Page, float]], transport: str
) -> None:
    page, detected = half_open_pages[transport]
    print(f"\nbrowser {transport}: half-open path noticed {detected:.2f} s after the send")
    assert detected <= PING_TIMEOUT_MS / 1000 + 1.0
    wait(page, "h.socket('a').state === 'connected'")
    for i in range(6, 10):
        js(page, "h.emit('a', 'record', arg)", i)
    assert js(page, "h.call('a', 'recorded')") == list(range(10))


CUT_MS = 3000
QUIET_MS = 7500  # two and a half cut periods
# Runs in the page: the moment the socket first runs a heartbeat shorter than the cut, and
# how many reconnects it took to get there (polled every 20 ms, like a wait would).
WATCH_SETTLING = """(() => {
  const timer = setInterval(() => {
    const stats = h.socket('a').stats;
    if (stats.pingInterval >= arg) return;
    const reconnects = h.s.a.states.filter((s) => s === 'reconnecting').length;
    window.settled = { at: performance.now(), reconnects, stats };
    clearInterval(timer);
  }, 20);
  return true;
})()"""


@pytest.fixture(scope="module")
def idle_pages(browser: Browser, server: Server) -> Iterator[dict[str, tuple[Page, int]]]:
    """One page per transport, each through its own idle-cutting proxy and in its own
    context, opened together: the three runs (two 3 s cuts, then the quiet window) are
    idle waits, so they share one window instead of taking three. Yields each page with
    the heartbeat its socket first ran."""
    proxies: list[FaultProxy] = []
    contexts: list[BrowserContext] = []
    pages: dict[str, tuple[Page, int]] = {}
    try:
        for transport in TRANSPORTS:
            proxies.append(FaultProxy(server.port, idle_cut=CUT_MS / 1000))
            contexts.append(browser.new_context())
            contexts[-1].set_default_timeout(WAIT_MS)
            page = load(contexts[-1], proxies[-1].url)
            open_socket(
                page, "a", f"idlecut-{transport}", transports=[transport], upgrade=False,
                backoffBase=50, backoffMax=200,
            )  # fmt: skip
            first = js(page, "h.socket('a').stats.pingInterval")
            js(page, WATCH_SETTLING, CUT_MS)
            pages[transport] = (page, first)
        yield pages
    finally:
        for context in contexts:
            context.close()
        for proxy in proxies:
            proxy.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_socket_stops_churning_under_a_short_idle_cut(
    idle_pages: dict[str, tuple[Page, int]], transport: str
) -> None:
    page, first = idle_pages[transport]
    assert js(page, "document.visibilityState") == "visible"  # timers run unthrottled
    assert first == 20_000
    # Two cuts ~3 s apart that agree make the client ask for a shorter heartbeat.
    settled = wait(page, "window.settled", timeout=15_000)
    assert isinstance(settled, dict)
    reconnects, stats = settled["reconnects"], settled["stats"]
    print(f"\nbrowser {transport}: {reconnects} reconnects before settling; {stats}")
    assert 2 <= reconnects <= 4
    assert 1000 <= stats["pingInterval"] < CUT_MS  # shorter than the cut, within bounds
    # No churn once the shorter heartbeat runs: the measurement window (two and a half
    # cut periods from the moment it settled) sees no reconnect. The window under test,
    # on the page's clock; not a synchronisation.
    wait(page, "performance.now() >= window.settled.at + arg", QUIET_MS,
         timeout=QUIET_MS + WAIT_MS)  # fmt: skip
    assert js(page, "h.s.a.states").count("reconnecting") == reconnects
    assert js(page, "h.call('a', 'echo', {n: 1})") == {"n": 1}
