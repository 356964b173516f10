"""Prometheus metrics after real traffic (issue #14): a server run with ``anywire serve
--metrics prometheus``, clients on each transport, then ``/anywire/metrics`` is scraped
and parsed with prometheus-client's own parser. Connections per transport and
namespace, frames and bytes, a call's ack round trip, a resume, an auth failure with its
reason, a flood refusal (a 4008 close on WebSocket), and a forced fallback with the
reason the client reported."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anywire.clients.python import Client

from .conftest import Server, free_port, make_token, start_server
from .raw import RawConn
from .test_flood import BURST, RATE, closed_with

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


PORT = free_port()  # --metrics-port: the same exposition on a port of its own


@pytest.fixture(scope="module")
def metered() -> Iterator[Server]:
    env = {"AW_FLOOD_RATE": str(RATE), "AW_FLOOD_BURST": str(BURST)}
    srv = start_server(env, args=("--metrics", "prometheus", "--metrics-port", str(PORT)))
    yield srv
    srv.stop()


def scrape(url: str, path: str = "/anywire/metrics") -> Samples:
    """Every sample of the exposition at ``path``, by name and labels."""
    r = httpx.get(url + path, timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(check: Any, url: str, timeout: float = 10.0) -> Samples:
    """Scrape until ``check(samples)`` holds (bounded): a connection's end reaches the
    server a moment after the client has closed."""
    async with asyncio.timeout(timeout):
        while True:
            samples = scrape(url)
            if check(samples):
                return samples
            await asyncio.sleep(0.05)


async def test_traffic_moves_the_metrics_of_its_transport(metered: Server, transport: str) -> None:
    url = metered.url
    before = scrape(url)
    client = Client(url, token=lambda: make_token(f"m-{transport}"), transports=(transport,))

    @client.on("question")
    async def answer(data: Any) -> Any:
        return data * 2

    try:
        await client.connect()
        during = scrape(url)
        assert value(during, "anywire_connections", transport=transport, namespace="/") == (
            value(before, "anywire_connections", transport=transport, namespace="/") + 1
        )
        opened = ("anywire_connections_opened_total",)
        fresh = {"transport": transport, "namespace": "/", "resumed": "false"}
        assert value(during, *opened, **fresh) == value(before, *opened, **fresh) + 1
        assert await client.call("echo", "x" * 1000) == "x" * 1000
        reply = await client.call("ask", {"event": "question", "data": 21})
        assert reply == {"reply": 42}
        await client.drop_connection()  # the client resumes by itself
        assert await client.call("echo", 1) == 1
        assert client.recovered is True
    finally:
        await client.close()

    def ended(s: Samples) -> bool:
        return value(s, "anywire_connections", transport=transport, namespace="/") == value(
            before, "anywire_connections", transport=transport, namespace="/"
        )

    after = await until(ended, url)
    grew = {
        name: value(after, name, transport=transport) - value(before, name, transport=transport)
        for name in (
            "anywire_received_frames_total",
            "anywire_sent_frames_total",
            "anywire_received_bytes_total",
            "anywire_sent_bytes_total",
        )
    }
    assert grew["anywire_received_frames_total"] >= 4, grew  # 3 calls and an ack at least
    assert grew["anywire_sent_frames_total"] >= 5, grew  # hellos, acks, the question
    assert grew["anywire_received_bytes_total"] > 1000, grew  # the echo went both ways
    assert grew["anywire_sent_bytes_total"] > 1000, grew
    resumed = {"transport": transport, "namespace": "/", "resumed": "true"}
    assert value(after, "anywire_connections_opened_total", **resumed) >= 1
    assert value(after, "anywire_resumes_total", outcome="recovered") >= 1
    rtt = "anywire_ack_round_trip_seconds_count"
    assert value(after, rtt) >= value(before, rtt) + 1
    lived = "anywire_connection_duration_seconds_count"
    assert value(after, lived, transport=transport) >= value(before, lived, transport=transport) + 2
    closed = value(
        after, "anywire_connections_closed_total", transport=transport, code_class="45xx"
    )
    assert closed >= 1  # the client's goodbye (4500)
    # A WebSocket client resumes without negotiate (protocol section 2.2.1).
    negotiated = 1 if transport == "websocket" else 2
    assert value(after, "anywire_negotiations_total", outcome="ok") >= negotiated


async def test_a_refused_credential_is_counted_with_its_reason(metered: Server) -> None:
    before = scrape(metered.url)
    async with httpx.AsyncClient(base_url=metered.url) as http:
        expired = make_token("late", ttl=-60)
        r = await http.post(
            "/anywire/negotiate", json={}, headers={"Authorization": f"Bearer {expired}"}
        )
        assert r.status_code == 401
        r = await http.post("/anywire/negotiate", json={"v": 2})
        assert r.status_code == 400
    after = scrape(metered.url)
    key = {"reason": "expired", "where": "negotiate"}
    assert value(after, "anywire_auth_failures_total", **key) == (
        value(before, "anywire_auth_failures_total", **key) + 1
    )
    for outcome in ("auth", "bad_request"):
        grew = value(after, "anywire_negotiations_total", outcome=outcome) - value(
            before, "anywire_negotiations_total", outcome=outcome
        )
        assert grew == 1, outcome


async def test_a_flood_is_counted_on_its_transport(metered: Server, transport: str) -> None:
    before = scrape(metered.url)
    flooder = RawConn(metered.url, transport, make_token(f"m-flooder-{transport}"))
    try:
        await flooder.open()
        frames = [{"t": "event", "s": i, "e": "record", "d": i} for i in range(1, 81)]
        if transport == "websocket":
            for i in range(0, 80, 10):
                await flooder.send_raw(json.dumps(frames[i : i + 10]))
            assert (await closed_with(flooder))["c"] == 4008
        else:
            for i in range(0, 80, 10):
                r = await flooder.send_raw(json.dumps(frames[i : i + 10]))
                assert r is not None
                if r.status_code == 429:
                    break
            assert r.status_code == 429
    finally:
        await flooder.close()

    def counted(s: Samples) -> bool:
        name = "anywire_flood_refusals_total"
        return value(s, name, transport=transport) > value(before, name, transport=transport)

    after = await until(counted, metered.url)
    if transport == "websocket":
        key = {"transport": "websocket", "reason": "flood"}
        await until(lambda s: value(s, "anywire_closes_total", **key) >= 1, metered.url)
    assert value(after, "anywire_protocol_errors_total") >= 1


async def test_json_stays_available_and_the_metrics_port_serves_the_same(
    metered: Server,
) -> None:
    stats = httpx.get(metered.url + "/anywire/metrics?format=json", timeout=5).json()
    assert {"sessions", "connections", "websocket_frames_out"} <= set(stats)
    own = scrape(f"http://127.0.0.1:{PORT}")
    assert value(own, "anywire_negotiations_total", outcome="ok") >= 1
    assert {name for name, _ in own} == {name for name, _ in scrape(metered.url)}


async def test_reported_failures_are_checked_and_bounded(metered: Server) -> None:
    before = scrape(metered.url)
    raw = RawConn(metered.url, "sse", make_token("m-failures"))
    try:
        for bad in ("upgrade", ["websocket"], {"websocket": "Not A Reason"}, {"sse": 3}):
            r = await raw.negotiate(failures=bad)
            assert r.status_code == 400 and r.json()["code"] == 4502, bad
        failures = {"websocket": "made_up", "carrier_pigeon": "timeout"}
        r = await raw.negotiate(failed=["websocket"], failures=failures)
        assert r.status_code == 200
    finally:
        await raw.close()
    after = scrape(metered.url)
    key = {"from": "websocket", "to": "sse", "reason": "other"}  # unknown names: bounded
    assert value(after, "anywire_fallbacks_total", **key) == (
        value(before, "anywire_fallbacks_total", **key) + 1
    )
    assert not any(dict(labels).get("from") == "carrier_pigeon" for _, labels in after)


def test_a_forced_fallback_is_counted_with_its_reason() -> None:
    broken = start_server({"AW_BREAK": "websocket"}, args=("--metrics", "prometheus"))
    try:
        asyncio.run(_fall_back(broken.url))
    finally:
        broken.stop()


async def _fall_back(url: str) -> None:
    """The WebSocket upgrade is refused (as behind a proxy that strips it): the client
    moves to SSE and says why in its next negotiate."""
    client = Client(url, token=lambda: make_token("m-fallback"), connect_timeout=2)
    try:
        await client.connect()
        assert client.transport == "sse" and client.fallback.failed == ["websocket"]
        after = scrape(url)
        key = {"from": "websocket", "to": "sse", "reason": "upgrade"}
        assert value(after, "anywire_fallbacks_total", **key) == 1
        assert value(after, "anywire_connections", transport="sse", namespace="/") == 1
    finally:
        await client.close()


async def test_the_exposition_mounts_in_a_litestar_app() -> None:
    app = "tests.e2e.mountapp:litestar_metrics"
    srv = start_server({"ANYWIRE_METRICS": "prometheus"}, app=app)
    client = Client(srv.url, token=lambda: make_token("m-litestar"), transports=("longpoll",))
    try:
        await client.connect()
        mounted = scrape(srv.url, "/metrics")
        assert value(mounted, "anywire_connections", transport="longpoll", namespace="/") == 1
        assert value(mounted, "anywire_negotiations_total", outcome="ok") == 1
    finally:
        await client.close()
        srv.stop()
