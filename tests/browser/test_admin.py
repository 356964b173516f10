"""The admin view in real Chromium: the page connects over anywire (namespace ``/$admin``)
with the admin token, draws its charts, and follows clients connecting on websocket, SSE
and long-polling. Without the token neither the page nor the namespace answers, and an
ordinary user cannot get into the namespace.

One server (admin view on, 1 s snapshots) and one Chromium for the module; the observed
clients are Python clients run on an event loop in a thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page

from anywire import __version__
from anywire.clients.python import Client
from anywire.clients.python.errors import AuthError
from tests.e2e.conftest import TRANSPORTS, Server, make_token, start_server
from tests.netfault import FaultProxy

from .conftest import WAIT_MS, wait

TOKEN = "admin-test-token-0123456789abcdef"
ADMIN = "/$admin"
SHOTS = Path(os.environ.get("AW_ADMIN_SHOTS", "/tmp/anywire-admin-shots"))
T = TypeVar("T")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # Turned on by the command line (``anywire serve --admin-token``).
    srv = start_server({"AW_ADMIN_INTERVAL": "0.5"}, args=("--admin-token", TOKEN))
    yield srv
    srv.stop()


class Loop:
    """An asyncio loop in a thread, for Python clients next to the sync Playwright API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


def admin_page(browser: Browser, server: Server) -> Page:
    context = browser.new_context(
        http_credentials={"username": "admin", "password": TOKEN},
        viewport={"width": 1200, "height": 900},
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(server.url + "/anywire/admin")
    wait(page, "document.body.dataset.state === 'connected' && document.body.dataset.nodes === '1'")
    return page


def chart_shot(page: Page, selector: str) -> bytes:
    return page.locator(selector).screenshot()


async def _connect(url: str, transport: str, room: str) -> Client:
    client = Client(url, make_token(f"adm-{transport}"), transports=(transport,))
    await client.connect()
    assert client.transport == transport
    await client.join(room)
    return client


async def _close(clients: list[Client]) -> None:
    for client in clients:
        await client.close()


def test_page_draws_and_follows_clients_on_every_transport(
    browser: Browser, server: Server, loop: Loop
) -> None:
    page = admin_page(browser, server)
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Two history points with nobody connected: the transports chart is flat.
    wait(page, "Number(document.querySelector('#chart-transports').dataset.points) >= 2")
    assert page.locator("#chart-transports").get_attribute("data-last") == "0,0,0,0"
    assert page.locator("#sessions").get_attribute("data-count") == "0"  # itself left out
    page.screenshot(path=str(SHOTS / "admin-before.png"))
    before_lines = chart_shot(page, "#chart-transports")
    before_connects = chart_shot(page, "#chart-connects")
    assert page.locator("#chart-connects").get_attribute("data-bars") == "0"
    before_max = page.locator("#chart-transports").get_attribute("data-max")

    clients = [loop.run(_connect(server.url, t, "admin-e2e")) for t in TRANSPORTS]
    try:
        wait(
            page,
            "document.body.dataset.transports === 'websocket=1,sse=1,longpoll=1'"
            " && document.querySelector('#rooms tr[data-room=\"admin-e2e\"]') !== null",
        )
        # The line chart has drawn a point with the clients.
        wait(page, "document.querySelector('#chart-transports').dataset.last === '1,1,1,0'")
        # The three connects drew bars (the page's own connect is not counted).
        wait(page, "document.querySelector('#sum-connects').textContent === '3'")
        page.screenshot(path=str(SHOTS / "admin-after.png"))
        after_lines = chart_shot(page, "#chart-transports")
        after_connects = chart_shot(page, "#chart-connects")
        row = page.locator('#rooms tr[data-room="admin-e2e"] td').nth(2).text_content()
        assert row == "3"
        assert page.locator("#sessions").get_attribute("data-count") == "3"
        assert page.locator("[data-transport=websocket]").text_content() == "1"
        assert page.locator("[data-transport=sse]").text_content() == "1"
        assert page.locator("[data-transport=longpoll]").text_content() == "1"
    finally:
        loop.run(_close(clients))
    assert before_max == "1"  # the scale's floor: nobody was connected
    assert page.locator("#chart-transports polygon").count() == 4
    assert before_lines != after_lines  # the charts' pixels changed
    assert before_connects != after_connects
    assert page.locator("#chart-connects rect.bar").count() >= 1
    page.context.close()


async def _fall_back_and_resume(proxy: FaultProxy) -> Client:
    """A client behind a middlebox that swallows everything after a WebSocket's 101:
    it lands on SSE; its connection is then cut and it resumes, reporting in that
    negotiate why WebSocket failed (a fallback)."""
    # Not raced: WebSocket must fail (time out), not lose a race, to be reported.
    client = Client(
        proxy.url,
        make_token("adm-fallback"),
        transports=("websocket", "sse"),
        race_after=None,
        connect_timeout=1.0,
    )
    await client.connect()
    assert client.transport == "sse"
    sid = client.sid
    states: asyncio.Queue[str] = asyncio.Queue()
    client.on_state(lambda state: states.put_nowait(state))
    proxy.set("refuse")  # resets the SSE stream
    proxy.set("forward")
    async with asyncio.timeout(10):
        while await states.get() != "connected":
            pass
    assert client.sid == sid and client.transport == "sse"  # resumed, not started over
    return client


def test_page_charts_resumes_and_fallbacks(browser: Browser, server: Server, loop: Loop) -> None:
    page = admin_page(browser, server)
    before = {name: chart_shot(page, f"#chart-{name}") for name in ("resumes", "fallbacks")}
    before_sums = {n: page.locator(f"#sum-{n}").text_content() for n in ("resumes", "fallbacks")}
    proxy = FaultProxy(server.port, hole_after_101=True)
    try:
        client = loop.run(_fall_back_and_resume(proxy))
        try:
            for name in ("resumes", "fallbacks"):
                wait(
                    page,
                    f"Number(document.querySelector('#sum-{name}').textContent) > arg",
                    int(before_sums[name] or 0),
                )
            assert page.locator("#chart-resumes rect.bar").count() >= 1
            assert page.locator("#chart-fallbacks rect.bar").count() >= 1
            for name in ("resumes", "fallbacks"):
                assert chart_shot(page, f"#chart-{name}") != before[name]
        finally:
            loop.run(client.close())
    finally:
        proxy.close()
    page.context.close()


def test_page_files_and_key_refused_without_the_token(server: Server) -> None:
    base = server.url + "/anywire/admin"
    for url in (base, base + "/key", base + f"/{__version__}/admin.js"):
        for auth in (None, ("admin", "wrong-token-0123456789"), ("admin", "")):
            response = httpx.get(url, auth=auth)
            assert response.status_code == 401, (url, auth)
            assert response.json()["message"] == "authentication failed"
            assert response.headers["www-authenticate"].startswith("Basic ")
        wrong_bearer = httpx.get(url, headers={"authorization": "Bearer " + TOKEN[:-1]})
        assert wrong_bearer.status_code == 401
        assert httpx.get(url, auth=("anyone", TOKEN)).status_code == 200
    page = httpx.get(base, auth=("admin", TOKEN))
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert TOKEN not in page.text  # the page holds no secret
    log = server.log.read_text()
    assert TOKEN not in log and "wrong-token-0123456789" not in log
    assert "credential refused at admin page (admin)" in log  # wrong ones are noted


def test_namespace_refuses_users_and_wrong_tokens(server: Server) -> None:
    def negotiate(bearer: str | None) -> int:
        headers = {} if bearer is None else {"authorization": f"Bearer {bearer}"}
        response = httpx.post(
            server.url + "/anywire/negotiate", json={"ns": ADMIN}, headers=headers
        )
        return response.status_code

    assert negotiate(None) == 401
    assert negotiate(make_token("mallory")) == 401  # a valid user credential
    assert negotiate(TOKEN + "x") == 401
    assert negotiate("1.deadbeef") == 401  # a forged page key
    key = httpx.get(server.url + "/anywire/admin/key", auth=("admin", TOKEN)).text
    assert negotiate(key) == 200
    assert negotiate(TOKEN) == 200


async def _user_sees_no_snapshot(url: str, transport: str) -> None:
    user = Client(url, make_token("mallory"), namespace=ADMIN, transports=(transport,))
    with pytest.raises(AuthError):
        await user.connect()
    # In their own namespace, a room named like the admin namespace is just a room.
    plain = Client(url, make_token("mallory"), transports=(transport,))
    admin = Client(url, TOKEN, namespace=ADMIN, transports=(transport,))
    seen: dict[str, list[Any]] = {"plain": [], "admin": []}
    two = asyncio.Event()
    plain.on("snapshot")(lambda d: seen["plain"].append(d))

    def took(data: Any) -> None:
        seen["admin"].append(data)
        if len(seen["admin"]) >= 2:
            two.set()

    admin.on("snapshot")(took)
    async with plain, admin:
        await plain.join("$admin")
        await asyncio.wait_for(two.wait(), 10)
        assert plain.transport == admin.transport == transport
        figures = seen["admin"][-1]
        # The admin session is not in its own figures; the user's session is.
        assert figures["sessions"] >= 1
        assert all(r["ns"] != ADMIN for r in figures["rooms"]["top"])
    assert seen["plain"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_only_the_admin_token_subscribes(server: Server, loop: Loop, transport: str) -> None:
    loop.run(_user_sees_no_snapshot(server.url, transport))
