"""Negotiate advertises the clients' receipt rule, derived from the outbox bounds
(protocol sections 3.3 and 6.4)."""

from __future__ import annotations

import httpx

from anywire.core.settings import Settings
from anywire.server.app import Anywire


async def negotiate(aw: Anywire) -> dict[str, object]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=aw), base_url="http://test"
    ) as http:
        answer = await http.post("/anywire/negotiate", json={})
        await aw.stop()
    assert answer.status_code == 200
    body: dict[str, object] = answer.json()
    return body


async def test_negotiate_advertises_the_default_receipt_rule() -> None:
    body = await negotiate(Anywire(anonymous=True))
    assert body["rx"] == {"frames": 250, "bytes": 262144, "ms": 5000}


async def test_the_advertised_rule_follows_the_outbox_settings() -> None:
    settings = Settings(outbox_size=100, outbox_bytes=40_000, rx_wait=0.3)
    body = await negotiate(Anywire(anonymous=True, settings=settings))
    assert body["rx"] == {"frames": 25, "bytes": 10_000, "ms": 300}
