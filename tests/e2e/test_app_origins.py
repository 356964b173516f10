"""Mobile WebView origins (Capacitor, Ionic, Cordova): a page in an app's WebView sends the
app's own scheme as its Origin, which is never the server's own origin. Listed in
``allowed_origins`` it is accepted by negotiate, by each transport's origin check and by the
upstream POSTs; not listed, it is refused there with 403, like any foreign origin. Raw
protocol (the Origin header is exactly the WebView's), every transport.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .conftest import Server, make_token, start_server
from .raw import RawConn

# The origins of an app's bundled page: Capacitor on iOS (iosScheme), Ionic's WebView plugin
# on iOS, Cordova iOS with its `scheme` preference, and Android's WebView as Capacitor
# serves it (http://localhost before Capacitor 6, https://localhost since: androidScheme;
# Cordova Android 10+ uses https://localhost too).
APP_ORIGINS = (
    "capacitor://localhost",
    "ionic://localhost",
    "app://localhost",
    "http://localhost",
    "https://localhost",
)


@pytest.fixture(scope="module")
def listing() -> Iterator[Server]:
    """A server with exactly the app origins listed in ``allowed_origins``."""
    srv = start_server({"AW_ALLOWED_ORIGINS": ",".join(APP_ORIGINS)})
    yield srv
    srv.stop()


@pytest.mark.parametrize("origin", APP_ORIGINS)
async def test_listed_app_origin_is_accepted(listing: Server, transport: str, origin: str) -> None:
    conn = RawConn(listing.url, transport, make_token(), headers={"Origin": origin})
    try:
        neg = await conn.negotiate(transports=[transport])
        assert neg.status_code == 200
        # the WebView's fetch reads the answer only with this CORS header
        assert neg.headers["access-control-allow-origin"] == origin
        hello = await conn.open()
        assert hello["t"] == "hello"
        # upstream (a POST for sse and long-polling) carries the Origin too
        await conn.send({"t": "event", "s": 1, "id": 1, "e": "echo", "d": origin})
        ack = await conn.recv()
        assert ack == {"t": "ack", "s": ack["s"], "id": 1, "ok": True, "d": origin}
    finally:
        await conn.close()


async def test_listed_app_origin_passes_the_preflight(listing: Server) -> None:
    """A WebView's fetch with an Authorization header is preflighted first."""
    async with httpx.AsyncClient(base_url=listing.url) as http:
        for origin in APP_ORIGINS:
            r = await http.options("/anywire/negotiate", headers={"Origin": origin})
            assert r.status_code == 204, origin
            assert r.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("origin", APP_ORIGINS)
async def test_unlisted_app_origin_is_refused(server: Server, transport: str, origin: str) -> None:
    """The default test server lists only http://allowed.example."""
    conn = RawConn(server.url, transport, make_token(), headers={"Origin": origin})
    plain = RawConn(server.url, transport, make_token())  # negotiated without an Origin
    try:
        neg = await conn.negotiate(transports=[transport])
        assert neg.status_code == 403
        assert neg.json()["code"] == 4505
        ticket = (await plain.negotiate(transports=[transport])).json()["ticket"]
        bad = {"Origin": origin}
        if transport == "websocket":
            with pytest.raises(InvalidStatus) as info:
                await connect(
                    server.url.replace("http", "ws") + "/anywire/ws", additional_headers=bad
                )
            assert info.value.response.status_code == 403
        else:
            path = "/anywire/sse" if transport == "sse" else "/anywire/poll"
            r = await conn.http.get(path, params={"ticket": ticket}, headers=bad)
            assert r.status_code == 403
        pre = await conn.http.options("/anywire/send", headers=bad)
        assert pre.status_code == 403
    finally:
        await conn.close()
        await plain.close()
