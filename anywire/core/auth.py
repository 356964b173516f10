"""Authentication types shared by the server's authenticators and the session host."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is connecting, as established by an authenticator.

    ``user`` is the stable user id (a JWT's ``sub``), None for anonymous callers;
    ``expires_at`` is the credential's expiry as a Unix timestamp, or None if it never
    expires; ``claims`` keeps everything else for the application.
    """

    user: str | None
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict)
