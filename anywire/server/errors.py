"""Exceptions the server API raises to application code."""

from __future__ import annotations

from ..errors import BrokerUnavailable  # lives in a light module the Publisher imports

__all__ = ["AckError", "AckTimeout", "BrokerUnavailable", "Disconnected", "Reject"]


class AckTimeout(TimeoutError):
    """The peer did not acknowledge in time (distinct from every other failure)."""


class AckError(Exception):
    """The peer answered with an error acknowledgement."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class Disconnected(ConnectionError):
    """The session ended before the operation could complete."""


class Reject(Exception):
    """Raise from a connect or join hook to refuse, with a reason sent to the client."""

    def __init__(self, message: str = "refused") -> None:
        super().__init__(message)
        self.message = message
