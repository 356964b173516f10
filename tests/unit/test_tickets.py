"""Signed tickets and session tokens; single use through the TicketBook."""

from __future__ import annotations

import pytest

from anywire.core.closecodes import CloseCode
from anywire.core.errors import AuthError
from anywire.core.tickets import Signer, TicketBook

SECRET = b"0123456789abcdef-secret"


def signer() -> Signer:
    return Signer(SECRET)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        Signer(b"too short")
    Signer(b"x" * 16)


def test_sign_and_verify() -> None:
    payload = {"k": "t", "sid": "abc", "n": "nonce", "exp": 130.0, "é": "ü"}
    token = signer().sign(payload)
    assert token.isascii() and token.count(".") == 1
    assert signer().verify(token, "t", now=100.0) == payload


def test_signing_is_deterministic() -> None:
    assert signer().sign({"k": "s", "a": 1, "b": 2}) == signer().sign({"b": 2, "a": 1, "k": "s"})


def test_tokens_without_expiry_never_expire() -> None:
    token = signer().sign({"k": "s", "sid": "abc"})
    assert signer().verify(token, "s")["sid"] == "abc"
    assert signer().verify(token, "s", now=1e12)["sid"] == "abc"


def _refused(token: str, kind: str = "t", now: float | None = 100.0) -> AuthError:
    with pytest.raises(AuthError) as info:
        signer().verify(token, kind, now)
    assert info.value.code == CloseCode.SESSION_UNKNOWN
    return info.value


def test_wrong_kind_is_refused() -> None:
    session_token = signer().sign({"k": "s", "sid": "abc"})
    _refused(session_token, "t")
    _refused(signer().sign({"sid": "abc"}), "t")  # no kind at all


def test_expiry() -> None:
    token = signer().sign({"k": "t", "exp": 130.0})
    signer().verify(token, "t", now=129.9)
    _refused(token, now=130.0)
    _refused(token, now=None)  # an expiring ticket needs a clock to be checked


def test_other_secret_is_refused() -> None:
    token = Signer(b"another-secret-of-16").sign({"k": "t", "exp": 200.0})
    _refused(token)


@pytest.mark.parametrize("where", ["body", "mac"])
def test_tampering_is_refused(where: str) -> None:
    token = signer().sign({"k": "t", "sid": "abc", "exp": 200.0})
    body, mac = token.split(".")
    for i in range(len(body if where == "body" else mac)):
        if where == "body":
            chars = list(body)
            chars[i] = "A" if chars[i] != "A" else "B"
            forged = "".join(chars) + "." + mac
        else:
            chars = list(mac)
            chars[i] = "A" if chars[i] != "A" else "B"
            forged = body + "." + "".join(chars)
        _refused(forged)


def test_swapped_payload_is_refused() -> None:
    mine = signer().sign({"k": "t", "sid": "mine", "exp": 200.0})
    theirs = signer().sign({"k": "t", "sid": "theirs", "exp": 200.0})
    _refused(theirs.split(".")[0] + "." + mine.split(".")[1])


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "abc.", ".abc", "a.b.c", "%%%.x", "é.abc", "abc.é", "😀.😀", "\x00.\x00"],
)
def test_garbage_is_an_auth_error_not_a_crash(token: str) -> None:
    """Tokens come from query strings and headers: anything malformed is a plain refusal."""
    _refused(token)


def test_signed_non_object_payload_is_refused() -> None:
    s = signer()
    body = "WzEsMl0"  # base64url of "[1,2]"
    _refused(f"{body}.{s._mac(body)}")


# -- single use ---------------------------------------------------------------------------


def test_ticket_is_single_use() -> None:
    book = TicketBook()
    book.redeem("n1", expires_at=130.0, now=100.0)
    with pytest.raises(AuthError) as info:
        book.redeem("n1", expires_at=130.0, now=101.0)
    assert info.value.code == CloseCode.SESSION_UNKNOWN
    book.redeem("n2", expires_at=130.0, now=101.0)
    assert len(book) == 2


def test_prune_forgets_expired_nonces_only() -> None:
    book = TicketBook()
    book.redeem("old", expires_at=110.0, now=100.0)
    book.redeem("new", expires_at=140.0, now=100.0)
    book.prune(110.0)
    assert len(book) == 1
    with pytest.raises(AuthError):
        book.redeem("new", expires_at=140.0, now=120.0)


def test_memory_is_bounded_by_rate_times_ttl() -> None:
    book = TicketBook()
    ttl = 30.0
    for i in range(10_000):  # 10 tickets a second for 1000 seconds
        now = i / 10
        book.redeem(f"n{i}", expires_at=now + ttl, now=now)
        assert len(book) <= 10 * ttl + 1
    book.prune(1e9)
    assert len(book) == 0


def test_prune_keeps_nonces_redeemed_out_of_expiry_order() -> None:
    # Tickets are redeemed in any order (a slow client redeems an older ticket later):
    # pruning must forget exactly the expired ones whatever the order of redemption.
    book = TicketBook()
    book.redeem("late", expires_at=150.0, now=100.0)
    book.redeem("early", expires_at=120.0, now=101.0)
    book.redeem("middle", expires_at=135.0, now=102.0)
    book.prune(130.0)
    assert len(book) == 2
    for nonce, expires in (("late", 150.0), ("middle", 135.0)):
        with pytest.raises(AuthError):
            book.redeem(nonce, expires_at=expires, now=131.0)
    book.redeem("early", expires_at=160.0, now=131.0)  # forgotten: its ticket had expired

