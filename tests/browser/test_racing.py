"""Transport racing in Chromium (anywire/clients/js/racing.js): wherever the transport
tried first is black-holed (tests/e2e/testapp.py ``AW_BREAK``), the next one starts after
``raceAfter`` and the first message arrives within 1 s, not after the connect timeout;
only the winner's session is left on the server; a healthy server still gets WebSocket."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import BrowserContext

from tests.e2e.conftest import TRANSPORTS, Server, start_server

from .conftest import APP, load
from .drive import js

FIRST_MESSAGE = 1000  # ms, the target
BROKEN: dict[str, dict[str, str]] = {
    "websocket": {"AW_TRANSPORTS": "sse,websocket,longpoll", "AW_BREAK": "sse-silent"},
    "sse": {"AW_BREAK": "websocket-silent"},
    "longpoll": {"AW_BREAK": "websocket-silent,sse-silent"},
}
TIMED_OPEN = """(async () => {
  const t0 = performance.now();
  h.open(arg.name, arg.sub, arg.options);
  await h.socket(arg.name).ready();
  const hello = performance.now() - t0;
  const echo = await h.call(arg.name, 'echo', 'first');
  return [hello, performance.now() - t0, echo, h.socket(arg.name).transport,
          h.socket(arg.name).failed];
})()"""


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    started = {name: start_server(env, app=APP) for name, env in BROKEN.items()}
    started["healthy"] = start_server({}, app=APP)
    yield started
    for srv in started.values():
        srv.stop()


def _sessions_become_one(url: str, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while True:
        sessions = httpx.get(url + "/anywire/metrics").json()["sessions"]
        if sessions == 1:
            return
        assert time.monotonic() < deadline, f"{sessions} sessions left"
        time.sleep(0.02)


def _timed(context: BrowserContext, url: str, sub: str) -> tuple[float, float, str, list[str]]:
    page = load(context, url)
    options = {"connectTimeout": 5000, "upgrade": False}
    hello, first, echo, transport, failed = js(
        page, TIMED_OPEN, {"name": "a", "sub": sub, "options": options}
    )
    assert echo == "first"
    return hello, first, transport, failed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_black_holed_transports_are_raced_past(
    context: BrowserContext, servers: dict[str, Server], transport: str
) -> None:
    srv = servers[transport]
    hello, first, landed, failed = _timed(context, srv.url, f"race-{transport}")
    print(f"\nChromium, {transport} ({BROKEN[transport]['AW_BREAK']}): hello {hello:.0f} ms, "
          f"first message {first:.0f} ms")  # fmt: skip
    assert landed == transport
    assert first < FIRST_MESSAGE, first
    assert failed == []  # stopped contenders did not fail
    _sessions_become_one(srv.url)


def test_happy_path_picks_websocket(context: BrowserContext, servers: dict[str, Server]) -> None:
    srv = servers["healthy"]
    hello, first, landed, failed = _timed(context, srv.url, "race-happy")
    assert failed == []
    print(f"\nChromium, healthy: {landed}, hello {hello:.0f} ms, first message {first:.0f} ms")
    assert landed == "websocket"
    assert first < FIRST_MESSAGE, first
    _sessions_become_one(srv.url)
