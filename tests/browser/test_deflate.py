"""The browser client in real Chromium with permessage-deflate on and off: Chromium
always offers it, so the server's ``--ws-deflate`` alone decides. Either way events
arrive in order and acks work both ways; a recording TCP proxy shows what was
negotiated and whether a repetitive payload crossed the wire in plain text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext

from tests.e2e.conftest import Server, start_server
from tests.netfault import FaultProxy

from .conftest import APP, load
from .drive import js, open_socket, wait_events

TEXT = "see you at the station at nine, bring the tickets please! " * 8


@pytest.fixture(scope="module", params=[True, False], ids=["server-deflates", "server-plain"])
def any_server(request: pytest.FixtureRequest) -> Iterator[tuple[Server, bool]]:
    srv = start_server({}, app=APP, args=("--ws-deflate",) if request.param else ())
    yield srv, bool(request.param)
    srv.stop()


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_deflate_on_and_off_in_chromium(
    context: BrowserContext, any_server: tuple[Server, bool], codec: str
) -> None:
    server, deflates = any_server
    proxy = FaultProxy(server.port, record=True)
    try:
        page = load(context, proxy.url)
        open_socket(page, "a", f"deflate-{codec}", ("question", "n"), transports=["websocket"],
                    codec=codec)  # fmt: skip
        assert js(page, "h.socket('a').transport") == "websocket"
        assert js(page, "h.call('a', 'echo', arg)", TEXT) == TEXT  # browser -> server
        asked = js(page, "h.call('a', 'ask', {event: 'question', data: arg})", TEXT)
        assert asked == {"reply": TEXT}  # server -> browser, the browser's answer back
        js(page, "h.emit('a', 'burst', {n: 300})")
        assert wait_events(page, "a", "n", 300) == list(range(300))
        wire = bytes(proxy.recorded)
    finally:
        proxy.close()
    start = wire.index(b"HTTP/1.1 101")
    upgrade = wire[start : wire.index(b"\r\n\r\n", start)].lower()
    assert (b"permessage-deflate" in upgrade) is deflates
    assert (TEXT.encode() in wire) is not deflates
