"""Every credential refusal looks the same to the caller (issue #13, point 6): one 401
body whatever JWT check failed; the check is named only in the server's log line and in
the ``auth_refused_<kind>`` counter of the metrics."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import Server, make_token
from .testapp import AUDIENCE, SECRET

UNIFORM = {"error": "unauthorized", "code": 4501, "message": "authentication failed"}


def _rsa_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode({"sub": "eve", "exp": time.time() + 600, "aud": AUDIENCE}, pem, "RS256")


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "eve", "exp": int(time.time()) + 600, "aud": AUDIENCE, **extra}


# kind (the counter's suffix) -> the Authorization header value, or None for none.
CASES: dict[str, Any] = {
    "missing": lambda: None,
    "malformed": lambda: "Bearer not.a.jwt",
    "signature": lambda: "Bearer " + jwt.encode(_claims(), "another-secret-of-32-bytes-000000"),
    "expired": lambda: "Bearer " + make_token("eve", ttl=-30),
    "audience": lambda: "Bearer " + jwt.encode(_claims(aud="someone-else"), SECRET),
    "claims": lambda: (
        "Bearer " + jwt.encode({"exp": int(time.time()) + 600, "aud": AUDIENCE}, SECRET)
    ),
    "algorithm": lambda: "Bearer " + jwt.encode(_claims(), None, algorithm="none"),
    "not_yet_valid": lambda: "Bearer " + jwt.encode(_claims(nbf=int(time.time()) + 600), SECRET),
}


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_every_jwt_failure_gets_the_same_401(
    server: Server, transport: str, kind: str
) -> None:
    value = CASES[kind]()
    headers = {} if value is None else {"Authorization": value}
    async with httpx.AsyncClient(base_url=server.url) as http:
        before = (await http.get("/anywire/metrics")).json()
        r = await http.post(
            "/anywire/negotiate", json={"v": 1, "transports": [transport]}, headers=headers
        )
        after = (await http.get("/anywire/metrics")).json()
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/json"
    assert r.json() == UNIFORM
    key = f"auth_refused_{kind}"
    assert after.get(key, 0) == before.get(key, 0) + 1, (key, after)
    assert after["auth_refused"] == before.get("auth_refused", 0) + 1


async def test_hs_rs_confusion_is_refused_uniformly(server: Server, transport: str) -> None:
    headers = {"Authorization": "Bearer " + _rsa_token()}
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post(
            "/anywire/negotiate", json={"v": 1, "transports": [transport]}, headers=headers
        )
    assert r.status_code == 401 and r.json() == UNIFORM


async def test_the_reason_is_logged_once_without_traceback(server: Server, transport: str) -> None:
    marker = f"Bearer {make_token('eve', ttl=-30)}"
    size = server.log.stat().st_size
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post(
            "/anywire/negotiate",
            json={"v": 1, "transports": [transport]},
            headers={"Authorization": marker},
        )
        assert r.status_code == 401
        await http.get("/anywire/health")  # the log line is written before this answer
    with server.log.open("rb") as f:
        f.seek(size)
        added = f.read().decode(errors="replace")
    lines = [line for line in added.splitlines() if "credential refused" in line]
    assert len(lines) == 1 and "(expired)" in lines[0], added
    assert "Traceback" not in added
