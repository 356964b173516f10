"""The JS client's resume over the WebSocket without negotiate (wsresume.js, protocol
section 2.2.1) in real Chromium against the real server: a dropped WebSocket comes back
over one connection with no negotiate reaching the server, and every event of a stream
running meanwhile arrives once and in order; turned off, it negotiates as before."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import Server

from .conftest import wait
from .drive import js, open_socket, wait_events


def _counters(server: Server) -> dict[str, int]:
    return dict(httpx.get(server.url + "/anywire/metrics", timeout=10).json())


@pytest.mark.parametrize("ws_resume", [True, False])
def test_a_dropped_websocket_resumes_without_negotiate(
    page: Page, server: Server, ws_resume: bool
) -> None:
    name = f"br-ws-resume-{ws_resume}"
    open_socket(page, "a", name, record=("n",), transports=["websocket"], wsResume=ws_resume)
    sid = js(page, "h.socket('a').sid")
    js(page, "h.emit('a', 'burst', {n: 300, pause: 0.005})")
    wait_events(page, "a", "n", 60)
    before = _counters(server)
    js(page, "h.socket('a').dropConnection()")
    assert wait_events(page, "a", "n", 300) == list(range(300))  # once, in order
    wait(page, "h.socket('a').state === 'connected'")
    after = _counters(server)
    assert js(page, "h.socket('a').sid") == sid and js(page, "h.socket('a').recovered") is True
    change = {k: after.get(k, 0) - before.get(k, 0) for k in ("negotiations", "ws_resumes")}
    want = (
        {"negotiations": 0, "ws_resumes": 1} if ws_resume else {"negotiations": 1, "ws_resumes": 0}
    )
    assert change == want, change
