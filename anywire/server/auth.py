"""Authenticators: turn the bearer credential of a negotiate request into an Identity.

An authenticator is any callable ``(token, scope) -> Identity`` (sync or async) that raises
:class:`~anywire.core.errors.AuthError` to refuse. :class:`JWTAuth` covers the common
case; :class:`AnonymousAuth` gives throw-away identities (the demo).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import jwt

from ..core.auth import Identity
from ..core.errors import AuthError
from ..transports.base import Scope, header

__all__ = ["AnonymousAuth", "Authenticator", "JWTAuth", "bearer"]

Authenticator = Callable[[str | None, Mapping[str, Any]], Identity | Awaitable[Identity]]

_HMAC = frozenset({"HS256", "HS384", "HS512"})
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def check_secret(value: object, name: str) -> str:
    """``value`` if it can be a server secret (the admin token, the API key), else
    ValueError naming ``name`` and why: at least 16 printable ASCII characters without
    spaces (it travels in HTTP headers)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if len(value) < 16:
        raise ValueError(f"{name} must be at least 16 characters (use a random one)")
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise ValueError(f"{name} must be printable ASCII without spaces")
    return value


def bearer(scope: Scope) -> str | None:
    """The bearer token of a request's Authorization header."""
    value = header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


class JWTAuth:
    """Verify a JWT with a fixed algorithm allowlist; ``exp`` is required.

    ``key`` is the HMAC secret or the public key. ``algorithms`` must be all HMAC or all
    asymmetric (mixing them enables key-confusion attacks); ``none`` is never accepted.
    The user id is the ``sub`` claim.
    """

    def __init__(
        self,
        key: str | bytes,
        algorithms: Sequence[str] = ("HS256",),
        *,
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        algs = frozenset(algorithms)
        if not algs or not (algs <= _HMAC or algs <= _ASYMMETRIC):
            raise ValueError("algorithms must be a non-empty set of HMAC-only or asymmetric-only")
        self.key = key
        self.algorithms = sorted(algs)
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway

    def __call__(self, token: str | None, scope: Mapping[str, Any]) -> Identity:
        if not token:
            raise AuthError("missing bearer token", kind="missing")
        required = ["exp", "sub"]
        if self.audience is not None:
            required.append("aud")
        if self.issuer is not None:
            required.append("iss")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": required},
            )
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}", kind=failure_kind(exc)) from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("invalid token: sub must be a non-empty string", kind="claims")
        return Identity(user=sub, expires_at=float(claims["exp"]), claims=claims)


# Which JWT check failed, for the server's log line and metrics (never for the client).
# Ordered: the first matching class wins (ExpiredSignatureError is an InvalidTokenError).
_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.InvalidAlgorithmError, "algorithm"),
    (jwt.MissingRequiredClaimError, "claims"),
    (jwt.DecodeError, "malformed"),
)


def failure_kind(exc: Exception) -> str:
    """The name of the JWT check ``exc`` reports (``invalid`` if none is known)."""
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    return "invalid"


class AnonymousAuth:
    """Accept everyone; a bearer token, if given, is ignored. Each caller gets a random
    ``guest-xxxx`` user id. Meant for demos and trusted networks only."""

    def __call__(self, token: str | None, scope: Mapping[str, Any]) -> Identity:
        return Identity(
            user=f"guest-{secrets.token_hex(3)}", expires_at=None, claims={"anonymous": True}
        )
