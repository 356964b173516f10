"""The test application mounted under a prefix, as real applications do.

* ``starlette``: ``Mount("/api", app=aw)`` in a Starlette app (anywire at ``/api/anywire``);
* ``litestar``: a Litestar app with the plugin, anywire's ``path`` from ``AW_PATH``;
* ``litestar_mounted``: that Litestar app itself inside ``Mount("/outer")``;
* ``litestar_metrics``: the Litestar app with anywire's Prometheus exposition mounted
  at ``/metrics`` (docs/operations.md).

The server sees the prefix as ``root_path`` (section 3.3 of docs/protocol.md: the URLs
negotiate advertises carry it).
"""

from __future__ import annotations

from litestar import Litestar, asgi
from starlette.applications import Starlette
from starlette.routing import Mount

from anywire.server.litestar import AnywirePlugin

from .testapp import aw

starlette = Starlette(routes=[Mount("/api", app=aw)])
starlette.anywire = aw  # type: ignore[attr-defined]  # the CLI drains it on SIGTERM

litestar = Litestar(plugins=[AnywirePlugin(aw)])  # the plugin stops anywire on shutdown

litestar_mounted = Starlette(routes=[Mount("/outer", app=litestar)])
litestar_mounted.anywire = aw  # type: ignore[attr-defined]

litestar_metrics = Litestar(
    route_handlers=[asgi("/metrics", is_mount=True)(aw.metrics.exposition)],
    plugins=[AnywirePlugin(aw)],
)
