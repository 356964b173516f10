"""The anywire server: the ``Anywire`` object, authenticators, Litestar plugin, CLI."""

from ..core.settings import Settings
from .app import Anywire
from .auth import AnonymousAuth, JWTAuth
from .errors import AckError, AckTimeout, Disconnected, Reject
from .litestar import AnywirePlugin
from .socket import Socket

__all__ = [
    "AckError",
    "AckTimeout",
    "AnonymousAuth",
    "Anywire",
    "AnywirePlugin",
    "Disconnected",
    "JWTAuth",
    "Reject",
    "Settings",
    "Socket",
]
