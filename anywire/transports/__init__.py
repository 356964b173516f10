"""Thin raw-ASGI adapters that turn a wire into frames for a session.

Each transport depends only on :mod:`anywire.core` and on the small :class:`Host` protocol
in :mod:`.base`, which the server implements.
"""

from .base import Host, Link, TransportInfo

__all__ = ["Host", "Link", "TransportInfo"]
