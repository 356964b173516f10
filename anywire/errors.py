"""Exceptions shared by the server and the processes that publish without a node.

Standard library only: :mod:`anywire.publisher` (a Django or Celery process) imports it
without importing the server. :mod:`anywire.server.errors` re-exports it, so
``from anywire.server import BrokerUnavailable`` names the same class.
"""

from __future__ import annotations

__all__ = ["BrokerUnavailable"]


class BrokerUnavailable(ConnectionError):
    """The shared broker (Redis) cannot be reached.

    ``maybe_published`` is False when the request certainly did not reach Redis (the
    event was not published: retrying cannot duplicate it) and True when Redis may have
    run it before the failure (a reply lost in a timeout or a broken connection): retry
    with the same ``id=`` (:meth:`Anywire.emit`, :meth:`Publisher.emit`) to publish it at
    most once.
    """

    def __init__(self, message: str = "", *, maybe_published: bool = False) -> None:
        super().__init__(message)
        self.maybe_published = maybe_published
