"""Shared helpers of the in-process host tests."""

from __future__ import annotations

from anywire.core.auth import Identity
from anywire.server.app import Anywire
from anywire.server.issuer import Issued


async def issue(
    aw: Anywire,
    user: str = "u1",
    codec: str = "json",
    resume: str | None = None,
    since: dict[str, tuple[str, int]] | None = None,
) -> Issued:
    """What negotiate would answer ``user`` (sid, token, ticket, resumable)."""
    return await aw.host.issuer.issue(Identity(user), "/", codec, resume, since or {})
