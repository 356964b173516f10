"""The Python client reads a busy server's Retry-After (negotiate 503 or 429) and never
negotiates again sooner (anywire/clients/python/negotiate.py, backoff.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from anywire.clients.python.backoff import BUSY_WAIT_MAX, BUSY_WAITS, retry_delay, waits_out
from anywire.clients.python.negotiate import MAX_RETRY_AFTER, retry_after


def answer(
    status: int, headers: dict[str, str] | None = None, body: object = None
) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, headers=headers or {}, content=content)


def test_seconds_or_a_date_in_the_header_else_the_body() -> None:
    assert retry_after(answer(503, {"Retry-After": "5"})) == 5.0
    assert retry_after(answer(429, {"Retry-After": "1"}, {"code": 4008})) == 1.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    wait = retry_after(answer(503, {"Retry-After": later}))
    assert wait is not None and 28 <= wait <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after(answer(503, {"Retry-After": past})) == 0.0
    assert retry_after(answer(503, {}, {"code": 4000, "retry_after": 7})) == 7.0
    assert retry_after(answer(503, {"Retry-After": "soon"}, {"retry_after": 2})) == 2.0
    assert retry_after(answer(503, {}, {"retry_after": "7"})) is None
    assert retry_after(answer(503, {}, {"retry_after": True})) is None
    assert retry_after(answer(500, {"Retry-After": "5"})) is None  # only 503 and 429
    assert retry_after(answer(503, {"Retry-After": "nan"})) is None
    assert retry_after(answer(503, {"Retry-After": "99999999"})) == MAX_RETRY_AFTER


def test_the_backoff_comes_on_top_of_the_wait() -> None:
    delays = iter([0.1, 0.2])
    assert retry_delay(delays, 5.0) == 5.1
    assert retry_delay(delays, None) == 0.2


def test_a_first_connect_waits_a_busy_server_out_a_few_times_and_not_for_long() -> None:
    assert waits_out(5.0, 1) and waits_out(5.0, BUSY_WAITS)
    assert not waits_out(5.0, BUSY_WAITS + 1)
    assert not waits_out(None, 1)  # no Retry-After: not busy, some other failure
    assert waits_out(BUSY_WAIT_MAX, 1) and not waits_out(BUSY_WAIT_MAX + 1, 1)
