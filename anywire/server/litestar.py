"""Litestar integration: mount anywire into a Litestar application as a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.config.app import AppConfig
from litestar.handlers import asgi
from litestar.plugins import InitPluginProtocol
from litestar.types import Receive, Scope, Send

if TYPE_CHECKING:
    from .app import Anywire

__all__ = ["AnywirePlugin"]


class AnywirePlugin(InitPluginProtocol):
    """Adds anywire's endpoints under ``anywire.path`` and ties its start/stop to the app.

    ::

        aw = Anywire(auth=JWTAuth("secret"))
        app = Litestar(route_handlers=[...], plugins=[AnywirePlugin(aw)])
    """

    def __init__(self, anywire: Anywire) -> None:
        self.anywire = anywire

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        aw = self.anywire

        @asgi(path=aw.path, is_mount=True, copy_scope=True, opt={"exclude_from_auth": True})
        async def anywire_endpoints(scope: Scope, receive: Receive, send: Send) -> None:
            # Litestar strips the mount prefix from scope["path"]; anywire routes on the
            # full path, which raw_path still carries.
            full = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
            scope["path"] = full or aw.path + scope["path"]
            await aw(scope, receive, send)  # type: ignore[arg-type]

        app_config.route_handlers.append(anywire_endpoints)

        async def start() -> None:
            await aw.start()

        async def stop() -> None:
            await aw.stop()

        app_config.on_startup.append(start)
        app_config.on_shutdown.append(stop)
        return app_config
