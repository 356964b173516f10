"""The connection log of a browser's connections (issue #14), on every transport: one
``anywire serve --log-level debug --log-format json`` with the access log on, the browser
client in real Chromium. Every JWT, ticket and session token the page received (``/token``
and negotiate answers, read from Chromium's network events) must be absent from the
server's output; the connect line names the page's Origin on a WebSocket, the disconnect
line its code, duration and frames."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Response

from tests.e2e.conftest import TRANSPORTS, Server, start_server

from .conftest import APP, load, wait
from .drive import js, open_socket


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("browser-logs") / "server.log"
    srv = start_server({}, log=log, app=APP, args=("--log-level", "debug", "--log-format", "json"))
    yield srv
    srv.stop()


def _conn_lines(server: Server, start: int) -> list[dict[str, Any]]:
    with server.log.open("rb") as f:
        f.seek(start)
        records = [json.loads(line) for line in f.read().decode().splitlines() if line]
    return [r for r in records if r["logger"] == "anywire.conn"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_browser_session_is_logged_without_its_credentials(
    context: BrowserContext, server: Server, transport: str
) -> None:
    start = server.log.stat().st_size
    answers: list[Response] = []
    context.on("response", lambda r: answers.append(r) if "/token" in r.url or
               r.url.endswith("/anywire/negotiate") else None)  # fmt: skip
    page = load(context, server.url)
    user = f"browser-logs-{transport}"
    open_socket(page, "a", user, transports=[transport])
    sid = js(page, "h.socket('a').sid")
    assert js(page, "h.call('a', 'echo', 5)") == 5
    js(page, "h.close('a')")
    wait(page, "h.socket('a').state === 'disconnected'")

    # Every credential the page was handed (read while the page still lives).
    secrets: set[str] = set()
    for answer in answers:
        if "/token" in answer.url:
            secrets.add(answer.text())
        elif answer.status == 200:
            body = answer.json()
            secrets |= {body["token"], body["ticket"]}
    assert len(secrets) >= 3  # a JWT, a session token, a ticket

    deadline = time.monotonic() + 15
    while not any(r["event"] == "disconnect" and r.get("sid") == sid
                  for r in _conn_lines(server, start)):  # fmt: skip
        assert time.monotonic() < deadline, "no disconnect line"
        page.wait_for_timeout(50)  # the server writes it when it notices the close
    text = server.log.read_text()
    for secret in secrets:
        assert secret not in text and secret.rsplit(".", 1)[-1] not in text

    lines = _conn_lines(server, start)
    (connect,) = [r for r in lines if r["event"] == "connect" and r.get("sid") == sid]
    assert (connect["transport"], connect["user"], connect["resumed"]) == (transport, user, False)
    if transport == "websocket":  # a browser always sends Origin with an upgrade
        assert connect["origin"] == server.url
    (ended,) = [r for r in lines if r["event"] == "disconnect" and r.get("sid") == sid]
    assert ended["duration"] > 0 and ended["frames_in"] >= 1 and ended["frames_out"] >= 1
