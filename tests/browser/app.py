"""The app the browser tests load: the end-to-end test app plus a test page.

``GET /`` is a page that imports the browser client from the server's versioned URL and
exposes a small harness (``harness.js``) to the tests; ``GET /worker.js`` is a module Worker
script that imports it the same way (``test_worker.py``); ``GET /token?sub=NAME[&ttl=S]``
mints a JWT (valid 600 s by default), so the page's ``getToken()`` fetches a fresh one
before every negotiate, as a real application would. Everything under ``/anywire/`` is
the end-to-end test app.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt

from tests.e2e import testapp

HERE = Path(__file__).resolve().parent
LOG = os.environ.get("AW_RECORD_FILE")


@testapp.aw.on("log")
async def log(sock: Any, data: Any) -> None:
    """Append ``data`` to a file that outlives the server process (restart tests)."""
    if LOG:
        with open(LOG, "a") as out:
            out.write(json.dumps({"user": sock.user, "data": data}) + "\n")


def _with_client(name: str) -> bytes:
    """The file ``name`` of this folder with the client's versioned URL filled in."""
    text = (HERE / name).read_text().replace("{{CLIENT_URL}}", testapp.aw.client_url)
    return text.encode()


async def _respond(send: Any, status: int, ctype: bytes, body: bytes) -> None:
    headers = [(b"content-type", ctype), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Any, receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    if scope["type"] != "http" or path.startswith("/anywire/"):
        await testapp.app(scope, receive, send)
    elif path == "/":
        await _respond(send, 200, b"text/html; charset=utf-8", _with_client("page.html"))
    elif path == "/worker.js":
        await _respond(send, 200, b"text/javascript", _with_client("worker.js"))
    elif path == "/roundtrip.mjs":  # the round trip the runtime tests share
        body = (HERE.parent / "js" / "roundtrip.mjs").read_bytes()
        await _respond(send, 200, b"text/javascript", body)
    elif path == "/harness.js":
        await _respond(send, 200, b"text/javascript", (HERE / "harness.js").read_bytes())
    elif path == "/token":
        params = parse_qs(scope.get("query_string", b"").decode())
        sub = params.get("sub", ["browser"])[0]
        ttl = int(params.get("ttl", ["600"])[0])
        now = int(time.time())
        claims = {"sub": sub, "exp": now + ttl, "iat": now, "aud": testapp.AUDIENCE}
        token = jwt.encode(claims, testapp.SECRET, algorithm="HS256")
        await _respond(send, 200, b"text/plain", token.encode())
    else:
        await _respond(send, 404, b"text/plain", b"not found")


app.anywire = testapp.aw  # type: ignore[attr-defined]  # the CLI drains it on SIGTERM
