"""The anywire server: the ``Anywire`` object, authenticators, Litestar plugin, CLI."""

from typing import TYPE_CHECKING, Any

from ..core.auth import Identity
from ..core.errors import AuthError
from ..core.settings import Settings
from .app import Anywire
from .auth import AnonymousAuth, JWTAuth
from .broker_redis import RedisBroker
from .errors import AckError, AckTimeout, BrokerUnavailable, Disconnected, Reject
from .socket import Socket
from .undelivered import UndeliveredEvent

__all__ = [
    "AckError",
    "AckTimeout",
    "AnonymousAuth",
    "Anywire",
    "AnywirePlugin",
    "AuthError",
    "BrokerUnavailable",
    "Disconnected",
    "Identity",
    "JWTAuth",
    "RedisBroker",
    "Reject",
    "Settings",
    "Socket",
    "UndeliveredEvent",
]

if TYPE_CHECKING:
    from .litestar import AnywirePlugin


def __getattr__(name: str) -> Any:
    """``AnywirePlugin`` on first use: importing Litestar costs every ``anywire serve``,
    node and worker process ~0.4-0.8 s of CPU at start, and only a Litestar app needs it."""
    if name == "AnywirePlugin":
        from .litestar import AnywirePlugin

        return AnywirePlugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
