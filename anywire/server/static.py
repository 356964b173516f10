"""Serving the browser client (``anywire/clients/js``) from the server itself.

``GET {path}/client/<version>/<file>`` answers the packaged ES modules with their content
type, a strong ``ETag`` and ``Cache-Control: public, max-age=31536000, immutable``: the
version is in the URL, so a browser may keep a file forever and a new release is a new URL.
``GET {path}/client/latest/<file>`` redirects (302, ``no-cache``) to the current version,
for pages that do not want to pin one. Only files that ship in the package are served
(the set is read once); anything else is 404, so no path can escape the folder.

The files are public code, so they carry ``Access-Control-Allow-Origin: *``: a page on
another origin may import the client from this server.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

from .. import __version__
from ..core.errors import ProtocolError
from ..transports.base import Receive, Scope, Send, header, send_json_error
from .mount import land

__all__ = ["ClientAssets"]

_TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".ts": b"text/plain; charset=utf-8",
    ".json": b"application/json",
    ".md": b"text/markdown; charset=utf-8",
    ".txt": b"text/plain; charset=utf-8",
}
_IMMUTABLE = b"public, max-age=31536000, immutable"
_PRIVATE = b"private, max-age=31536000, immutable"


class ClientAssets:
    """The packaged browser client, served under ``{prefix}/client/``.

    :param prefix: the anywire path prefix (``/anywire``), used to build redirect targets.
    :param package: the package holding the files.
    :param folder: a folder inside ``package`` holding them instead (the admin view's).
    :param route: the endpoint below ``prefix`` (``client``).
    :param public: whether any origin may read them (CORS ``*``, shared caches); the
        admin view's files are served only to its token holder, cached privately.
    """

    def __init__(
        self,
        prefix: str,
        package: str = "anywire.clients.js",
        *,
        folder: str = "",
        route: str = "client",
        public: bool = True,
    ) -> None:
        self.prefix = prefix
        self.version = __version__
        self.package = package
        self.folder = folder
        self.route = route
        self.public = public

    @functools.cached_property
    def _files(self) -> dict[str, tuple[bytes, bytes, bytes]]:
        # Read and hashed on the first request for a file, not when every Anywire object
        # is built: most processes (workers, tests, the bench app) never serve one.
        files: dict[str, tuple[bytes, bytes, bytes]] = {}
        root = resources.files(self.package)
        for entry in (root.joinpath(self.folder) if self.folder else root).iterdir():
            suffix = _suffix(entry.name)
            if entry.is_file() and suffix in _TYPES and not entry.name.startswith("."):
                body = entry.read_bytes()
                etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
                files[entry.name] = (body, _TYPES[suffix], etag)
        return files

    @property
    def names(self) -> list[str]:
        """The file names that are served."""
        return sorted(self._files)

    def url(self, name: str = "anywire.js") -> str:
        """The versioned URL of ``name``."""
        return f"{self.prefix}/{self.route}/{self.version}/{name}"

    async def __call__(self, tail: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``GET``/``HEAD`` for ``tail`` = ``<version>/<file>``."""
        version, _, name = tail.partition("/")
        entry = self._files.get(name)
        if entry is None or not version:
            await send_json_error(send, 404, ProtocolError("no such client file", 4502))
            return
        extra = [(b"access-control-allow-origin", b"*")] if self.public else []
        if version != self.version:
            # Only one version ships with this server; "latest" (or a stale pin) is sent
            # to the real one, never cached, so an upgrade is picked up on the next load.
            landing = land(scope, self.prefix)  # behind a mount: keep its prefix
            public = landing.public if landing is not None else self.prefix
            location = f"{public}/{self.route}/{self.version}/{name}".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 302,
                    "headers": [(b"location", location), (b"cache-control", b"no-cache"), *extra],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        body, ctype, etag = entry
        headers = [
            (b"content-type", ctype),
            (b"cache-control", _IMMUTABLE if self.public else _PRIVATE),
            (b"etag", etag),
            (b"x-content-type-options", b"nosniff"),
            *extra,
        ]
        if header(scope, b"if-none-match") == etag.decode():
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        head = scope.get("method") == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})


def _suffix(name: str) -> str:
    return name[name.rfind(".") :] if "." in name else ""
