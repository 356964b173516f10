"""Where a request lands under anywire's path prefix, behind any ASGI mount.

An ASGI server or framework that mounts an application under a prefix (uvicorn's
``--root-path``, Starlette's ``Mount``, a Litestar app inside one) keeps the full path in
``scope["path"]`` and puts the prefix in ``scope["root_path"]``. anywire routes on the
path *below* the mount, and advertises its URLs (negotiate's transport offers and
``send_url``) *with* the mount's prefix, so a client that reached negotiate at
``/api/anywire/negotiate`` is sent to ``/api/anywire/ws`` and not to ``/anywire/ws``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Landing", "land"]


class Landing(NamedTuple):
    """Where a request for anywire landed."""

    public: str
    """anywire's prefix as clients see it (the mount's root path included)."""
    tail: str
    """The endpoint below it (``/negotiate``, ``/ws``...)."""


def land(scope: Any, prefix: str) -> Landing | None:
    """The :class:`Landing` of ``scope`` under anywire's ``prefix``; None when the request
    is not for anywire.

    The path below the mount is tried first. A path that already carries the mount's
    prefix in anywire's own ``prefix`` (``Anywire(path="/api/anywire")`` inside a
    ``Mount("/api")``, the only way before mounts were understood) is still served."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "") or ""
    root = root.rstrip("/")
    if root and path.startswith(root + "/"):
        below = path[len(root) :]
        if below.startswith(prefix + "/"):
            return Landing(root + prefix, below[len(prefix) :])
    if path.startswith(prefix + "/"):
        return Landing(prefix, path[len(prefix) :])
    return None
