"""The Python client through an HTTP forward proxy, given as the ``proxy`` option or by
``HTTP_PROXY`` in the environment, on every transport: negotiate, the stream or polls,
the POSTs and the WebSocket (a CONNECT tunnel) all go through it; ``proxy=False`` and
``NO_PROXY`` go direct (anywire/clients/python/proxies.py). The proxy is a separate
process (tests/proxies/forward_proxy.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import ROOT, TRANSPORTS, Server, free_port, make_token, start_server
from tests.e2e.test_behaviour import Inbox

_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy", "wss_proxy")


class Proxy:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.log = tmp / f"proxy-{self.port}.log"
        self.log.touch()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.proxies.forward_proxy", str(self.port), str(self.log)],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("forward proxy did not start") from None
                time.sleep(0.05)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    started = Proxy(tmp_path_factory.mktemp("proxy"))
    yield started
    started.stop()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def _flow(client: Client) -> None:
    inbox = Inbox()
    client.on("n")(inbox)
    async with client:
        assert await client.call("echo", "via proxy") == "via proxy"
        await client.call("burst", {"n": 30})
        assert await inbox.wait_for(30) == list(range(30))
        assert client.stats["duplicates"] == 0


def _expected(server: Server, transport: str) -> list[str]:
    """Request lines the proxy must have seen for one session on ``transport``."""
    base = f"http://127.0.0.1:{server.port}/anywire"
    return {
        "websocket": [f"POST {base}/negotiate", f"CONNECT 127.0.0.1:{server.port}"],
        "sse": [f"POST {base}/negotiate", f"GET {base}/sse?", f"POST {base}/send"],
        "longpoll": [f"POST {base}/negotiate", f"GET {base}/poll?", f"POST {base}/send"],
    }[transport]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("how", ["option", "environment"])
async def test_every_transport_goes_through_the_proxy(
    server: Server, proxy: Proxy, clean_env: pytest.MonkeyPatch, transport: str, how: str
) -> None:
    if how == "environment":
        clean_env.setenv("HTTP_PROXY", proxy.url)
    seen = len(proxy.lines())
    client = Client(
        server.url,
        token=lambda: make_token(f"proxied-{transport}-{how}"),
        transports=(transport,),
        proxy=proxy.url if how == "option" else None,
    )
    await _flow(client)
    lines = proxy.lines()[seen:]
    for expected in _expected(server, transport):
        assert any(line.startswith(expected) for line in lines), (expected, lines)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("how", ["proxy=False", "NO_PROXY"])
async def test_direct_when_told(
    server: Server, proxy: Proxy, clean_env: pytest.MonkeyPatch, transport: str, how: str
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy.url)
    if how == "NO_PROXY":
        clean_env.setenv("NO_PROXY", "127.0.0.1")
    seen = len(proxy.lines())
    client = Client(
        server.url,
        token=lambda: make_token(f"direct-{transport}"),
        transports=(transport,),
        proxy=False if how == "proxy=False" else None,
    )
    await _flow(client)
    assert proxy.lines()[seen:] == []


def test_bad_proxy_is_refused() -> None:
    for bad in ("socks5://127.0.0.1:1080", "127.0.0.1:3128", "ftp://x"):
        with pytest.raises(ValueError, match="proxy must be"):
            Client("http://127.0.0.1:1", proxy=bad)
