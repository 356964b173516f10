"""JWTAuth: algorithm allowlist, required claims, audience, issuer, leeway."""

from __future__ import annotations

import time

import jwt
import pytest

from anywire.core.errors import AuthError
from anywire.server.auth import AnonymousAuth, JWTAuth

KEY = "k" * 64


def _token(**claims: object) -> str:
    payload = {"sub": "u", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, KEY, algorithm="HS256")


def test_valid_token_gives_identity_with_expiry() -> None:
    identity = JWTAuth(KEY)(_token(name="Ann"), {})
    assert identity.user == "u" and identity.claims["name"] == "Ann"
    assert identity.expires_at is not None and identity.expires_at > time.time()


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        jwt.encode({"sub": "u"}, KEY, algorithm="HS256"),  # no exp
        jwt.encode({"exp": int(time.time()) + 60}, KEY, algorithm="HS256"),  # no sub
        jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, KEY, algorithm="HS512"),
        jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, None, algorithm="none"),
        jwt.encode({"sub": 5, "exp": int(time.time()) + 60}, KEY, algorithm="HS256"),
    ],
    ids=["none", "empty", "no-exp", "no-sub", "alg-not-allowed", "alg-none", "sub-not-string"],
)
def test_refused(token: str | None) -> None:
    with pytest.raises(AuthError) as info:
        JWTAuth(KEY)(token, {})
    assert info.value.code == 4501


def test_audience_and_issuer_are_enforced_when_configured() -> None:
    auth = JWTAuth(KEY, audience="app", issuer="https://issuer.example")
    assert auth(_token(aud="app", iss="https://issuer.example"), {}).user == "u"
    for bad in (
        _token(aud="app"),
        _token(iss="https://issuer.example"),
        _token(aud="other", iss="https://issuer.example"),
        _token(aud="app", iss="https://evil.example"),
    ):
        with pytest.raises(AuthError):
            auth(bad, {})


def test_leeway_accepts_a_just_expired_token() -> None:
    just_expired = _token(exp=int(time.time()) - 5)
    with pytest.raises(AuthError):
        JWTAuth(KEY)(just_expired, {})
    assert JWTAuth(KEY, leeway=30)(just_expired, {}).user == "u"


@pytest.mark.parametrize("algorithms", [(), ("HS256", "RS256"), ("none",)])
def test_unsafe_algorithm_sets_are_refused_at_construction(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        JWTAuth(KEY, algorithms=algorithms)


def test_anonymous_gives_distinct_guests() -> None:
    auth = AnonymousAuth()
    users = {auth(None, {}).user for _ in range(20)}
    assert len(users) > 15 and all(u and u.startswith("guest-") for u in users)
