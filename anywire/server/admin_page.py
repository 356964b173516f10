"""The admin view's HTTP side: the page, its files and the key its connection uses.

Everything under ``{path}/admin`` answers only a request carrying the admin token, as
HTTP Basic (any user name, the token as password: the browser asks for it) or as a
bearer token; anything else gets the server's uniform 401 (with a Basic challenge).

* ``GET {path}/admin``: the page (no-store, a strict Content-Security-Policy: its own
  scripts and styles only, no frames);
* ``GET {path}/admin/key``: a short-lived key (:meth:`AdminView.key`) for the negotiate
  of the page's connection, so the token itself never sits in the page's JavaScript;
* ``GET {path}/admin/<version>/<file>``: the page's ES modules and style, versioned and
  cached privately like the browser client's files (:mod:`.static`).
"""

from __future__ import annotations

import base64
import binascii
import html
from importlib import resources
from typing import TYPE_CHECKING

from ..core.closecodes import CloseCode
from ..core.errors import ProtocolError
from ..transports.base import Receive, Scope, Send, header, send_json_error
from .mount import land
from .refresh import REFUSED
from .static import ClientAssets

if TYPE_CHECKING:
    from .admin import AdminView

__all__ = ["AdminPage", "credential"]

_CHALLENGE = (b"www-authenticate", b'Basic realm="anywire admin", charset="UTF-8"')
_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", _CSP),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]

_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]


def credential(scope: Scope) -> str | None:
    """The secret a request presents: a Basic password or a bearer token."""
    value = header(scope, b"authorization")
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return rest.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        return password if colon else None
    return None


class AdminPage:
    """``{prefix}/admin`` and below, for the holder of ``view``'s token."""

    def __init__(self, view: AdminView, prefix: str) -> None:
        self.view = view
        self.prefix = prefix
        self.assets = ClientAssets(
            prefix, "anywire.server", folder="static/admin", route="admin", public=False
        )
        self._template = (
            resources.files("anywire.server").joinpath("static/admin/index.html").read_text()
        )

    async def __call__(self, tail: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``tail`` (``/admin``, ``/admin/key``, ``/admin/<version>/<file>``)."""
        if scope.get("method", "GET") not in ("GET", "HEAD"):
            await send_json_error(send, 405, ProtocolError("GET only", 4502))
            return
        presented = credential(scope)
        if not self.view.admits(presented):
            if presented is not None:  # (none: a browser's first request, the challenge)
                refresher = self.view.aw.host.refresher  # one log line, auth-failure metrics
                refresher.note_refusal("admin", "admin credential refused", "admin page")
            refused = ProtocolError(REFUSED, CloseCode.UNAUTHORIZED)
            await send_json_error(send, 401, refused, [_CHALLENGE])
            return
        if tail == "/admin":
            await _answer(scope, send, _PAGE_HEADERS, self.page(scope).encode())
        elif tail == "/admin/key":
            await _answer(scope, send, _TEXT_HEADERS, self.view.key().encode())
        else:
            await self.assets(tail[len("/admin/") :], scope, receive, send)

    def page(self, scope: Scope) -> str:
        """The page's HTML, with the URLs as this request sees them (behind a mount too)."""
        landing = land(scope, self.prefix)
        public = landing.public if landing is not None else self.prefix
        values = {
            "{{PATH}}": public,
            "{{CLIENT}}": f"{public}/client/{self.assets.version}/anywire.js",
            "{{BASE}}": f"{public}/admin/{self.assets.version}/",
            "{{KEY}}": f"{public}/admin/key",
        }
        text = self._template
        for name, value in values.items():
            text = text.replace(name, html.escape(value, quote=True))
        return text


async def _answer(
    scope: Scope, send: Send, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    head = scope.get("method") == "HEAD"
    await send({"type": "http.response.body", "body": b"" if head else body})
