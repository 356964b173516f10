"""Fallback in the browser: the browser's WebSocket made to fail lands on SSE, SSE made to
fail lands on long-poll, and the transport that worked is remembered across a reload."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Route, WebSocketRoute

from tests.e2e.conftest import Server

from .conftest import load
from .drive import js, open_socket

ALL = ["websocket", "sse", "longpoll"]


class Breaker:
    """Makes the browser's WebSocket and/or SSE requests fail, and counts the attempts."""

    def __init__(self, context: BrowserContext, websocket: bool, sse: bool) -> None:
        self.ws_attempts = 0
        self.sse_attempts = 0
        if websocket:
            context.route_web_socket("**/anywire/ws*", self._ws)
        if sse:
            context.route("**/anywire/sse*", self._sse)

    def _ws(self, ws: WebSocketRoute) -> None:
        self.ws_attempts += 1
        ws.close(code=1011, reason="blocked by test")

    def _sse(self, route: Route) -> None:
        self.sse_attempts += 1
        route.fulfill(status=502, body="bad gateway")


def test_failing_websocket_lands_on_sse(context: BrowserContext, server: Server) -> None:
    breaker = Breaker(context, websocket=True, sse=False)
    page = load(context, server.url)
    open_socket(page, "a", "fb-ws", transports=ALL, connectTimeout=3000, upgrade=False)
    assert js(page, "h.socket('a').transport") == "sse"
    assert breaker.ws_attempts >= 1
    assert js(page, "h.call('a', 'echo', 'via sse')") == "via sse"


def test_failing_sse_lands_on_longpoll(context: BrowserContext, server: Server) -> None:
    breaker = Breaker(context, websocket=True, sse=True)
    page = load(context, server.url)
    open_socket(page, "a", "fb-sse", transports=ALL, connectTimeout=3000, upgrade=False)
    assert js(page, "h.socket('a').transport") == "longpoll"
    assert breaker.ws_attempts >= 1 and breaker.sse_attempts >= 1
    assert js(page, "h.call('a', 'echo', 'via poll')") == "via poll"


def test_remembered_transport_is_used_on_reload(context: BrowserContext, server: Server) -> None:
    breaker = Breaker(context, websocket=True, sse=True)
    page = load(context, server.url)
    open_socket(page, "a", "fb-mem", transports=ALL, connectTimeout=3000, upgrade=False)
    assert js(page, "h.socket('a').transport") == "longpoll"
    page.reload()
    page.wait_for_function("document.body.dataset.ready === '1'")
    ws, sse = breaker.ws_attempts, breaker.sse_attempts
    open_socket(page, "a", "fb-mem", transports=ALL, connectTimeout=3000, upgrade=False)
    # straight to long-poll: no new attempt on the transports that failed before
    assert js(page, "h.socket('a').transport") == "longpoll"
    assert (breaker.ws_attempts, breaker.sse_attempts) == (ws, sse)
    assert js(page, "h.call('a', 'echo', 'again')") == "again"


def test_upgrades_to_websocket_in_the_background(context: BrowserContext, server: Server) -> None:
    # WebSocket fails for the first attempt only (a flaky network), so the page starts on
    # SSE; the background probe then finds WebSocket working and moves there, losing and
    # reordering nothing.
    state = {"fail": 1}

    def flaky(ws: WebSocketRoute) -> None:
        if state["fail"] > 0:
            state["fail"] -= 1
            ws.close(code=1011, reason="flaky")
        else:
            ws.connect_to_server()

    context.route_web_socket("**/anywire/ws*", flaky)
    page = load(context, server.url)
    open_socket(page, "a", "upgrader", ("n",), transports=ALL, connectTimeout=3000)
    first = js(page, "h.socket('a').transport")
    assert first == "sse"
    js(page, "h.call('a', 'burst', {n: 500, pause: 0.01})")
    page.wait_for_function("h.socket('a').transport === 'websocket'")
    page.wait_for_function("h.s.a.events.n.length >= 500")
    assert js(page, "h.s.a.events.n") == list(range(500))
    js(page, "h.call('a', 'burst', {n: 100})")
    page.wait_for_function("h.s.a.events.n.length >= 600")
    assert js(page, "h.s.a.events.n") == list(range(500)) + list(range(100))
    assert "disconnected" not in js(page, "h.s.a.states")
