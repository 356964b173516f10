"""The browser client in Chromium against a server mounted under a prefix (Starlette
``Mount``, a Litestar app inside a ``Mount``), on every transport: the client is imported
from the mounted server (its ``latest`` redirect keeps the prefix) and resolves the
transport URLs negotiate gives, which carry the prefix, against the page's origin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.e2e.conftest import TRANSPORTS, Server, make_token, start_server
from tests.e2e.test_mounted import MOUNTS

SCRIPT = """async ([prefix, path, transport, token]) => {
  const anywire = await import(prefix + "/client/latest/anywire.js");
  const socket = anywire.connect({ path, transports: [transport], getToken: () => token });
  await socket.ready();
  const echo = await socket.call("echo", { path });
  const result = { transport: socket.transport, echo };
  await socket.close();
  return result;
}"""


@pytest.fixture(scope="module", params=["starlette", "litestar-mounted"])
def mounted(request: pytest.FixtureRequest) -> Iterator[tuple[Server, str]]:
    app, env, _, prefix = MOUNTS[request.param]
    srv = start_server(env, app=app, health=prefix + "/health")
    yield srv, str(request.param)
    srv.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_browser_client_reaches_a_mounted_server(
    browser: Browser, mounted: tuple[Server, str], transport: str
) -> None:
    server, name = mounted
    prefix = MOUNTS[name][3]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url + prefix + "/health")  # any page of the server's origin
        token = make_token(f"browser-mounted-{name}-{transport}")
        result = page.evaluate(SCRIPT, [prefix, prefix, transport, token])
        assert result == {"transport": transport, "echo": {"path": prefix}}
    finally:
        context.close()
