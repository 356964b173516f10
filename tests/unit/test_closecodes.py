"""Close codes: the range decides whether a client reconnects."""

from __future__ import annotations

import pytest

from anywire.core.closecodes import CloseCode, should_reconnect

RECONNECT = {
    CloseCode.SHUTDOWN,
    CloseCode.PING_TIMEOUT,
    CloseCode.SLOW_CONSUMER,
    CloseCode.INTERNAL_ERROR,
    CloseCode.TOKEN_EXPIRED,
    CloseCode.TRANSPORT_REPLACED,
    CloseCode.POLL_TIMEOUT,
    CloseCode.SESSION_UNKNOWN,
    CloseCode.FLOOD,  # the session is kept: resume after backoff (4506, terminal, retired)
}


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda c: c.name)
def test_every_code_decides_by_range(code: CloseCode) -> None:
    assert 4000 <= code <= 4999
    assert should_reconnect(code) is (code in RECONNECT)
    assert should_reconnect(code) is (code < 4500)


def test_documented_values() -> None:
    """These numbers are on the wire and in every client: they must never move."""
    assert {c.name: int(c) for c in CloseCode} == {
        "SHUTDOWN": 4000,
        "PING_TIMEOUT": 4001,
        "SLOW_CONSUMER": 4002,
        "INTERNAL_ERROR": 4003,
        "TOKEN_EXPIRED": 4004,
        "TRANSPORT_REPLACED": 4005,
        "POLL_TIMEOUT": 4006,
        "SESSION_UNKNOWN": 4007,
        "FLOOD": 4008,
        "NORMAL": 4500,
        "UNAUTHORIZED": 4501,
        "BAD_REQUEST": 4502,
        "MESSAGE_TOO_BIG": 4503,
        "FORBIDDEN": 4505,
        "TRANSPORT_DISABLED": 4507,
    }


@pytest.mark.parametrize(
    ("code", "expected"),
    [(4000, True), (4499, True), (4500, False), (4999, False), (4250, True), (4800, False)],
)
def test_range_edges(code: int, expected: bool) -> None:
    assert should_reconnect(code) is expected


@pytest.mark.parametrize("code", [1000, 1002, 1003, 1007, 1008, 1009, 1010])
def test_terminal_websocket_codes(code: int) -> None:
    assert not should_reconnect(code)


@pytest.mark.parametrize("code", [1001, 1005, 1006, 1011, 1012, 1013, 1014, 1015, 3000])
def test_transient_websocket_codes(code: int) -> None:
    assert should_reconnect(code)
