"""Signed connection tickets and session tokens (HMAC-SHA256, standard library only).

* A **ticket** is issued by negotiate, lives ``ticket_ttl`` seconds and is redeemed once by
  the first frame (or opening request) of a transport connection. It carries the session
  id, the identity and everything negotiate decided, so the long-lived credential never
  travels in a URL.
* A **session token** names a session and its owner node. It authorizes the follow-up
  requests of the HTTP transports (SSE upstream POSTs, long-polls) and asks negotiate for a
  resume. It is useless once the session has expired.

Format: ``base64url(json(payload)) "." base64url(hmac)``. Times are Unix seconds passed in
by the caller; nonces come from the caller too (the core has no clock and no randomness).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
from typing import Any

from .closecodes import CloseCode
from .errors import AuthError

__all__ = ["Signer", "TicketBook"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and verifies small JSON payloads with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest()[:24])

    def sign(self, payload: dict[str, Any]) -> str:
        """Serialize and sign ``payload``."""
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str, kind: str, now: float | None = None) -> dict[str, Any]:
        """Check the signature, the ``k`` (kind) field and, if present, ``exp`` against ``now``.

        Raises :class:`AuthError` with code 4007 SESSION_UNKNOWN for anything wrong: the
        caller learns nothing about which check failed.
        """
        body, sep, mac = token.partition(".")
        # Tokens arrive from query strings and headers: anything non-ASCII is forged (and
        # would make the HMAC input encoding and compare_digest raise instead).
        if not token.isascii() or not sep or not hmac.compare_digest(mac, self._mac(body)):
            raise AuthError("invalid token", CloseCode.SESSION_UNKNOWN)
        try:
            payload = json.loads(_unb64(body))
        except ValueError as exc:
            raise AuthError("invalid token", CloseCode.SESSION_UNKNOWN) from exc
        if not isinstance(payload, dict) or payload.get("k") != kind:
            raise AuthError("invalid token", CloseCode.SESSION_UNKNOWN)
        exp = payload.get("exp")
        if exp is not None and (now is None or now >= exp):
            raise AuthError("ticket expired", CloseCode.SESSION_UNKNOWN)
        return payload


class TicketBook:
    """Remembers redeemed ticket nonces until the tickets expire, to make them single-use.

    Memory is bounded by (tickets issued per second) x ``ticket_ttl``. The nonces are
    also kept in a heap by expiry, so forgetting the expired ones costs only what
    expired: a scan of every remembered nonce on each redeem made a reconnect storm
    quadratic (10,000 redeems, each over up to 10,000 nonces).
    """

    def __init__(self) -> None:
        self._used: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []  # heap of (expires_at, nonce)

    def redeem(self, nonce: str, expires_at: float, now: float) -> None:
        """Mark ``nonce`` used; raises :class:`AuthError` if it already was."""
        self.prune(now)
        if nonce in self._used:
            raise AuthError("ticket already used", CloseCode.SESSION_UNKNOWN)
        self._used[nonce] = expires_at
        heapq.heappush(self._expiry, (expires_at, nonce))

    def prune(self, now: float) -> None:
        """Forget nonces whose tickets have expired anyway."""
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, nonce = heapq.heappop(heap)
            self._used.pop(nonce, None)

    def __len__(self) -> int:
        return len(self._used)
