"""The negotiator's policy: which transports to offer a client, best first.

Inputs are the server's enabled transports (in its order of preference), what the client
says it can do, and the transports it reports as failed. Failed transports are not
dropped: they go to the end, so a client that saw its WebSocket fail is offered SSE first
next time, yet can still come back to WebSocket if everything else fails too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .settings import TRANSPORTS

__all__ = ["NegotiationRequest", "choose_codec", "order_transports"]


@dataclass(frozen=True, slots=True)
class NegotiationRequest:
    """What a client declares when it negotiates (all optional)."""

    transports: tuple[str, ...] = TRANSPORTS
    codecs: tuple[str, ...] = ("json",)
    failed: tuple[str, ...] = ()


def order_transports(
    enabled: Sequence[str], capable: Iterable[str], failed: Iterable[str]
) -> list[str]:
    """Enabled transports the client can use; working ones first, failed ones last (in the
    order they failed), each group in the server's order of preference."""
    capable_set = set(capable)
    failed_list = [t for t in dict.fromkeys(failed) if t in enabled and t in capable_set]
    working = [t for t in enabled if t in capable_set and t not in failed_list]
    return working + failed_list


def choose_codec(server: Sequence[str], client: Sequence[str]) -> str:
    """The first codec of the client's list that the server supports; JSON otherwise."""
    for name in client:
        if name in server:
            return name
    return "json"
