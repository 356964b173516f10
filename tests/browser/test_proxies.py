"""The browser through real nginx configured as a restrictive intermediary (the same
configurations as ``tests/proxies``): the page is loaded through the proxy, so every
request of the client crosses it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext

from tests.e2e.conftest import TRANSPORTS, Server
from tests.proxies.nginx import Nginx, proxy_test_server, restrictive_proxies

from .conftest import APP, load
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


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_short_idle_timeout_is_outlived(
    context: BrowserContext, proxies: dict[str, Nginx], transport: str
) -> None:
    page = load(context, proxies["short-idle"].url)
    open_socket(page, "a", f"px-idle-{transport}", ("n",), transports=[transport])
    # The stimulus is silence itself: 8 s without application traffic, longer than the
    # proxy's 5 s read timeout. Only heartbeats and the poll window keep the link open.
    time.sleep(8)
    assert js(page, "h.s.a.states") == ["connecting", "connected"]
    js(page, "h.call('a', 'burst', {n: 100})")
    assert wait_events(page, "a", "n", 100) == list(range(100))
    for i in range(30):
        js(page, "h.emit('a', 'record', arg)", i)
    assert js(page, "h.call('a', 'recorded')") == list(range(30))
    assert js(page, "h.s.a.states") == ["connecting", "connected"]
