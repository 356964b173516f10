"""A server mounted under a prefix (Starlette ``Mount``, a Litestar app with a custom
``path``, a Litestar app inside a ``Mount``) is reached by the Python client through its
``path`` option or a base URL with the prefix, on every transport: negotiate advertises
the transport URLs with the mount's prefix, and the client resolves them against the
origin (anywire/server/mount.py, anywire/clients/python/endpoints.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anywire.clients.python import Client

from .conftest import ROOT, Server, make_token, start_server
from .test_behaviour import Inbox

# name: (ASGI app, its environment, [(client url suffix, client path)...], advertised prefix)
MOUNTS: dict[str, tuple[str, dict[str, str], list[tuple[str, str]], str]] = {
    "starlette": (
        "tests.e2e.mountapp:starlette",
        {},
        [("/api", "/anywire"), ("", "/api/anywire"), ("/api/", "/anywire/")],
        "/api/anywire",
    ),
    "litestar": ("tests.e2e.mountapp:litestar", {"AW_PATH": "/rt/v1"}, [("", "/rt/v1")], "/rt/v1"),
    "litestar-mounted": (
        "tests.e2e.mountapp:litestar_mounted",
        {"AW_PATH": "/rt"},
        [("/outer", "/rt"), ("", "/outer/rt")],
        "/outer/rt",
    ),
}


@pytest.fixture(scope="module", params=sorted(MOUNTS))
def mounted(request: pytest.FixtureRequest) -> Iterator[tuple[Server, str]]:
    app, env, _, prefix = MOUNTS[request.param]
    srv = start_server(env, app=app, health=prefix + "/health")
    yield srv, str(request.param)
    srv.stop()


async def test_client_reaches_a_mounted_server(
    mounted: tuple[Server, str], transport: str
) -> None:
    server, name = mounted
    _, _, clients, prefix = MOUNTS[name]
    # What the server advertises: its public prefix, the mount's included.
    answer = httpx.post(
        f"{server.url}{prefix}/negotiate",
        json={"v": 1, "transports": [transport]},
        headers={"Authorization": f"Bearer {make_token('probe')}"},
    ).json()
    assert answer["send_url"] == prefix + "/send"
    assert answer["transports"][0]["url"].startswith(prefix + "/")
    for i, (suffix, path) in enumerate(clients):
        user = f"mounted-{name}-{transport}-{i}"
        client = Client(
            server.url + suffix,
            token=lambda user=user: make_token(user),  # type: ignore[misc]
            path=path,
            transports=(transport,),
            connect_timeout=3,
            reconnect=True,
        )
        inbox = Inbox()
        client.on("n")(inbox)
        async with client:
            assert client.transport == transport
            assert await client.call("echo", {"at": suffix + path}) == {"at": suffix + path}
            await client.call("burst", {"n": 20})
            got: list[Any] = await inbox.wait_for(20)
            assert got == list(range(20))
            for i in range(10):
                await client.emit("record", i)
            assert await client.call("recorded") == list(range(10))
            assert client.stats["duplicates"] == 0


@pytest.mark.parametrize("transport", ["sse", "longpoll"])
def test_js_client_reaches_a_mounted_server(mounted: tuple[Server, str], transport: str) -> None:
    """The JS client under the same prefixes, in node (no WebSocket global in node 20:
    the browser suite covers WebSocket; the URL resolution is the same code)."""
    node = shutil.which("node")
    assert node is not None, "node is required (CI installs it)"
    server, name = mounted
    for suffix, path in MOUNTS[name][2]:
        proc = subprocess.run(
            [node, "--experimental-eventsource", "tests/js/mounted_client.mjs",
             server.url + suffix, path, transport, make_token(f"js-{name}")],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        assert answer == {"transport": transport, "echo": {"js": server.url + suffix + path}}
