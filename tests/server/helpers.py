"""Shared helpers of the in-process host tests."""

from __future__ import annotations

from typing import Any

from anywire.core.auth import Identity
from anywire.server.app import Anywire
from anywire.server.issuer import Issued
from anywire.transports.base import Link


async def issue(
    aw: Anywire,
    user: str = "u1",
    codec: str = "json",
    resume: str | None = None,
    since: dict[str, tuple[str, int]] | None = None,
) -> Issued:
    """What negotiate would answer ``user`` (sid, token, ticket, resumable)."""
    return await aw.host.issuer.issue(Identity(user), "/", codec, resume, since or {})


def frames(aw: Anywire, link: Link) -> list[dict[str, Any]]:
    """Every frame :meth:`~anywire.server.host.SessionHost.outgoing` has for ``link`` now,
    decoded (batches flattened)."""
    out: list[dict[str, Any]] = []
    for raw in aw.host.outgoing(link):
        decoded = link.codec.decode(raw)
        out += decoded if isinstance(decoded, list) else [decoded]
    return out
