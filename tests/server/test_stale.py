"""server/stale.py driven directly: which first bytes are answered before parsing, with
what. A recording fake stands for the node's load shedding (the real one, end to end
with a stopped server, is tests/e2e/test_stale.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from anywire.core.admission import Refusal
from anywire.server.stale import Stale, stale

NEGOTIATE = b"POST /anywire/negotiate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


class Shedding:
    """A node that sheds (or not), recording what it was told."""

    def __init__(self, retry: int | None) -> None:
        self.retry = retry
        self.asked = 0
        self.stale: list[float] = []

    def refusal(self) -> Refusal | None:
        self.asked += 1
        if self.retry is None:
            return None
        return Refusal(503, 4000, self.retry, "server overloaded: try later")

    def stale_negotiate(self, age: float) -> None:
        self.stale.append(age)


class Transport:
    """No socket: the kernel's age is unknown here (only the shedding decides)."""

    def get_extra_info(self, name: str) -> Any:
        return None


@pytest.fixture
def node() -> Iterator[list[Shedding]]:
    saved = list(Stale.listeners)
    Stale.listeners.clear()
    yield Stale.listeners  # type: ignore[misc]
    Stale.listeners[:] = saved


def test_while_the_node_sheds_a_negotiate_is_answered_unparsed(node: list[Any]) -> None:
    node.append(Shedding(retry=7))
    answer = stale(NEGOTIATE, Transport())
    assert answer is not None
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 7\r\n" in head and b"connection: close" in head
    assert b'"code": 4000' in body and b'"retry_after": 7' in body


def test_what_is_not_answered_before_parsing(node: list[Any]) -> None:
    assert stale(NEGOTIATE, Transport()) is None  # no shedding registered (shed_lag 0)
    shedding = Shedding(retry=7)
    node.append(shedding)
    browser = NEGOTIATE.replace(b"Host: x\r\n", b"Host: x\r\nOrigin: https://app\r\n")
    assert stale(browser, Transport()) is None  # the application adds the CORS headers
    poll = b"GET /anywire/poll?token=t HTTP/1.1\r\nHost: x\r\n\r\n"
    assert stale(poll, Transport()) is None  # work already paid for
    assert shedding.asked == 0
    shedding.retry = None
    assert stale(NEGOTIATE, Transport()) is None  # not shedding, age unknown: served
    assert shedding.asked == 1 and shedding.stale == []
