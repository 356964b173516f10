"""The Prometheus listener in-process (real app, real host, real Links): label values
stay bounded whatever clients send, and a scrape reads the plain counters as they are."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from anywire.core.auth import Identity
from anywire.core.closecodes import CloseCode
from anywire.core.frames import Connect
from anywire.server.app import Anywire
from anywire.server.prometheus import code_class
from anywire.transports.base import Link
from anywire.transports.sse import INFO as SSE


def _samples(aw: Anywire) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert aw.metrics.prometheus is not None
    text = aw.metrics.prometheus.exposition().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _attach(aw: Anywire, namespace: str) -> Link:
    issued = await aw.host.issuer.issue(Identity("u"), namespace, "json", None, {})
    link = Link(SSE, aw.host.codec("json"), aw.sse.traffic)
    await aw.host.attach(link, Connect(issued.ticket))
    return link


async def test_namespaces_without_handlers_are_labelled_other() -> None:
    aw = Anywire(anonymous=True, metrics="prometheus")

    @aw.on("say", namespace="/chat")
    def say(sock: Any, data: Any) -> None:
        pass

    await aw.start()
    try:
        for ns in ("/chat", "/made-up-1", "/made-up-2", "/"):
            await _attach(aw, ns)
        samples = _samples(aw)
        live = {
            dict(labels)["namespace"]: v
            for (name, labels), v in samples.items()
            if name == "anywire_connections"
        }
        assert live == {"/chat": 1, "other": 2, "/": 1}
    finally:
        await aw.stop(grace=0.1)


async def test_a_scrape_reads_the_transport_counters_as_they_are() -> None:
    aw = Anywire(anonymous=True, metrics="prometheus")
    await aw.start()
    try:
        link = await _attach(aw, "/")
        aw.host.outgoing(link)  # the hello
        aw.sse.traffic.bytes_out += 1234  # as the SSE writer counts them
        samples = _samples(aw)
        sse = frozenset({("transport", "sse")})
        assert samples[("anywire_sent_frames_total", sse)] == aw.sse.traffic.frames_out >= 1
        assert samples[("anywire_sent_bytes_total", sse)] == 1234
        assert samples[("anywire_sessions", frozenset())] == 1
    finally:
        await aw.stop(grace=0.1)


def test_close_codes_fall_in_three_classes() -> None:
    assert [code_class(c) for c in (1000, 1006, CloseCode.SLOW_CONSUMER, CloseCode.NORMAL)] == [
        "1xxx", "1xxx", "40xx", "45xx",
    ]  # fmt: skip
