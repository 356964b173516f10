"""A graceful server restart (a deploy) under a live page, on every transport: the page
reconnects by itself, messages it sent before, during and after the restart reach the
server once each and in order, and it is back in its room without rejoining by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import TRANSPORTS, Server, start_server

from .conftest import APP, wait
from .drive import js, open_socket, wait_events


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("restart") / "log.jsonl"


@pytest.fixture(scope="module")
def server(record_file: Path) -> Iterator[Server]:
    srv = start_server({"AW_RECORD_FILE": str(record_file)}, app=APP)
    yield srv
    srv.stop()


def logged(record_file: Path, user: str) -> list[object]:
    lines = record_file.read_text().splitlines() if record_file.exists() else []
    return [e["data"] for e in map(json.loads, lines) if e["user"] == user]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_survives_a_server_restart(
    page: Page, server: Server, record_file: Path, transport: str
) -> None:
    user, room = f"restart-{transport}", f"restart-room-{transport}"
    open_socket(page, "a", user, ("news",), transports=[transport], backoffMax=1000)
    js(page, "h.join('a', arg)", room)
    for i in range(100):
        js(page, "h.emit('a', 'log', arg)", i)
    server.stop()  # SIGTERM: the server drains and tells the page (4000, reconnect)
    wait(page, "h.s.a.states.includes('reconnecting')")
    for i in range(100, 150):  # sent while the server is down: queued in the page
        js(page, "h.emit('a', 'log', arg)", i)
    fresh = start_server(server.env, server.port, server.log, server.args, app=server.app)
    server.proc = fresh.proc
    wait(page, "h.s.a.socket.state === 'connected' && h.s.a.states.lastIndexOf('connected') > 0")
    for i in range(150, 200):
        js(page, "h.emit('a', 'log', arg)", i)
    assert js(page, "h.call('a', 'echo', 'flushed')") == "flushed"
    assert logged(record_file, user) == list(range(200))
    # the page rejoined its room by itself: a broadcast after the restart reaches it
    open_socket(page, "b", "newsroom", transports=[transport])
    for i in range(10):
        js(page, "h.call('b', 'to_room', arg)", {"room": room, "event": "news", "data": i})
    assert wait_events(page, "a", "news", 10) == list(range(10))
    assert js(page, "h.socket('a').transport") == transport
