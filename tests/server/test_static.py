"""The browser client served by the server: versioned URL, content type, caching, 304,
redirect of other versions, and nothing but the packaged files."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from anywire import __version__
from anywire.server.app import Anywire
from anywire.server.static import ClientAssets

PREFIX = "/anywire"


async def get(
    assets: ClientAssets, tail: str, method: str = "GET", headers: list[Any] | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Run one request through the assets endpoint; returns status, headers, body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "headers": headers or []}
    await assets(tail, scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


async def test_entry_module_is_served_with_type_and_immutable_cache() -> None:
    assets = ClientAssets(PREFIX)
    status, headers, body = await get(assets, f"{__version__}/anywire.js")
    assert status == 200
    assert headers[b"content-type"] == b"text/javascript; charset=utf-8"
    assert headers[b"cache-control"] == b"public, max-age=31536000, immutable"
    assert headers[b"access-control-allow-origin"] == b"*"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert int(headers[b"content-length"]) == len(body)
    packaged = resources.files("anywire.clients.js").joinpath("anywire.js").read_bytes()
    assert body == packaged
    assert b"export" in body


async def test_every_relative_import_resolves_to_a_served_file() -> None:
    # No build step: a page imports anywire.js and the browser fetches what it imports,
    # relative to the versioned URL. Every such import must be a served file.
    assets = ClientAssets(PREFIX)
    for name in [n for n in assets.names if n.endswith(".js")]:
        status, _, body = await get(assets, f"{__version__}/{name}")
        assert status == 200, name
        for target in re.findall(rb"""(?:from|import)\s*["']\./([^"']+)["']""", body):
            assert target.decode() in assets.names, (name, target)
    assert "anywire.js" in assets.names and "anywire.d.ts" in assets.names
    assert "package.json" in assets.names
    assert not [n for n in assets.names if n.endswith(".py")]


async def test_etag_gives_304_without_body() -> None:
    assets = ClientAssets(PREFIX)
    _, headers, _ = await get(assets, f"{__version__}/anywire.js")
    etag = headers[b"etag"]
    status, again, body = await get(
        assets, f"{__version__}/anywire.js", headers=[(b"if-none-match", etag)]
    )
    assert (status, body) == (304, b"")
    assert again[b"etag"] == etag


async def test_head_has_headers_and_no_body() -> None:
    status, headers, body = await get(ClientAssets(PREFIX), f"{__version__}/anywire.js", "HEAD")
    assert (status, body) == (200, b"")
    assert int(headers[b"content-length"]) > 0


async def test_latest_and_stale_versions_redirect_uncached() -> None:
    assets = ClientAssets(PREFIX)
    for version in ("latest", "0.0.1"):
        status, headers, _ = await get(assets, f"{version}/anywire.js")
        assert status == 302
        assert headers[b"location"] == f"{PREFIX}/client/{__version__}/anywire.js".encode()
        assert headers[b"cache-control"] == b"no-cache"


async def test_unknown_files_and_escapes_are_404() -> None:
    assets = ClientAssets(PREFIX)
    for tail in (
        f"{__version__}/nope.js",
        f"{__version__}/__init__.py",
        f"{__version__}/../app.py",
        f"{__version__}/",
        "",
        f"/{__version__}/anywire.js",
    ):
        status, headers, body = await get(assets, tail)
        assert status == 404, tail
        assert headers[b"content-type"] == b"application/json"
        assert b'"code": 4502' in body


def test_anywire_exposes_the_client_url() -> None:
    aw = Anywire(anonymous=True)
    assert aw.client_url == f"/anywire/client/{__version__}/anywire.js"
