"""The anywire server: the ``Anywire`` object, authenticators, Litestar plugin, CLI."""

from ..core.auth import Identity
from ..core.errors import AuthError
from ..core.settings import Settings
from .app import Anywire
from .auth import AnonymousAuth, JWTAuth
from .broker_redis import RedisBroker
from .errors import AckError, AckTimeout, BrokerUnavailable, Disconnected, Reject
from .litestar import AnywirePlugin
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
