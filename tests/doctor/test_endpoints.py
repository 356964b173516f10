"""The doctor's probe endpoints (anywire/server/doctor.py) on a real server: off unless
asked for, echoing only the probe's own header, Authorization and cookie, holds capped,
bad input refused, and every request charged to the per-address negotiate rate.

Each test comes from an address of its own (``X-Forwarded-For``, trusted from 127.0.0.1
by uvicorn), so their rate buckets do not mix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from anywire.core.settings import Settings
from anywire.server.app import Anywire
from anywire.server.doctor import MAX_HOLD, MAX_PER_ADDRESS
from tests.bucket import allowance, at_once
from tests.e2e.conftest import Server, start_server

BURST = 40  # requests an address may make at once (the negotiate limiter's bucket)
RATE = 0.5  # its refill, a second


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    env = {"AW_NEGOTIATE_RATE": str(RATE), "AW_NEGOTIATE_BURST": str(BURST)}
    srv = start_server(env, args=("--doctor",))
    yield srv
    srv.stop()


def get(
    server: Server, path: str, ip: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    sent = {"X-Forwarded-For": ip, **(headers or {})}
    return httpx.get(server.url + "/anywire/doctor" + path, headers=sent, timeout=10)


def test_off_by_default() -> None:
    assert Anywire(anonymous=True).doctor is None
    assert Anywire(anonymous=True, settings=Settings(doctor=True)).doctor is not None


def test_echo_returns_only_the_probes_own_values(server: Server) -> None:
    response = get(server, "/echo", "198.51.100.1", headers={
        "X-Anywire-Doctor": "n1",
        "Authorization": "Bearer real-user-token",
        "Cookie": "session=secret; anywire_doctor=n1",
    })  # fmt: skip
    assert response.status_code == 200
    assert response.json() == {"doctor": True, "header": "n1", "authorization": None,
                               "cookie": "n1"}  # fmt: skip
    assert "secret" not in response.text and "real-user-token" not in response.text


def test_hold_is_capped_and_checked(server: Server) -> None:
    assert get(server, "/hold?s=0.2", "198.51.100.2").json() == {"held": 0.2}
    assert get(server, "/hold?s=nan", "198.51.100.2").status_code == 400
    assert get(server, "/hold?s=-1", "198.51.100.2").status_code == 400
    assert get(server, "/nothing", "198.51.100.2").status_code == 404
    assert MAX_HOLD == 60.0  # what ?s=1e9 would be cut to (not waited for here)


def test_plain_get_of_the_websocket_echo_says_upgrade_required(server: Server) -> None:
    assert get(server, "/ws", "198.51.100.3").status_code == 426


def test_websocket_echo(server: Server) -> None:
    url = server.url.replace("http://", "ws://") + "/anywire/doctor/ws"
    with connect(url, additional_headers={"X-Forwarded-For": "198.51.100.4"}) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"


def test_requests_are_charged_to_the_address(server: Server) -> None:
    # Together, so that they outpace the refill however slow the machine (tests/bucket.py).
    codes, took = at_once(lambda: get(server, "/echo", "198.51.100.9").status_code, BURST + 4)
    ok = codes.count(200)
    assert BURST <= ok <= allowance(BURST, RATE, took), (codes, took)
    assert 429 in codes and codes.count(429) == len(codes) - ok, (codes, took)
    assert get(server, "/echo", "198.51.100.10").status_code == 200  # another address


def test_page_imports_the_doctor_module(server: Server) -> None:
    page = get(server, "", "198.51.100.11")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/anywire/client/" in page.text and "/doctor.js" in page.text


async def test_open_holds_are_capped_per_address(server: Server) -> None:
    async def hold(client: httpx.AsyncClient, ip: str) -> int:
        url = server.url + "/anywire/doctor/hold?s=1.5"
        response = await client.get(url, headers={"X-Forwarded-For": ip}, timeout=10)
        return response.status_code

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:
        busy = [hold(client, "198.51.100.20") for _ in range(MAX_PER_ADDRESS + 1)]
        codes = await asyncio.gather(*busy, hold(client, "198.51.100.21"))
    assert sorted(codes[:-1]) == [200] * MAX_PER_ADDRESS + [503]
    assert codes[-1] == 200  # another address is not refused
