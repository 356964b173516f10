"""After stop(), requests are refused with 4000 instead of starting the host again (a
restarted broker and timers would outlive the shutdown and keep the process alive)."""

from __future__ import annotations

import httpx

from anywire.server.app import Anywire


async def test_requests_after_stop_are_refused_not_restarting() -> None:
    aw = Anywire(anonymous=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=aw), base_url="http://test"
    ) as http:
        assert (await http.post("/anywire/negotiate", json={})).status_code == 200
        await aw.stop()
        late = await http.post("/anywire/negotiate", json={})
        assert late.status_code == 503
        assert late.json()["code"] == 4000
        assert (await http.get("/anywire/health")).status_code == 503
        # an explicit start() (a lifespan startup) is still allowed
        await aw.start()
        assert (await http.post("/anywire/negotiate", json={})).status_code == 200
        await aw.stop()
