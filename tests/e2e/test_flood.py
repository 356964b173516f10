"""Floods (issue #13, item 4): one budget per session for everything a client makes the
server do. Past it a WebSocket is closed with 4008 FLOOD and an HTTP request is answered
429 with ``Retry-After`` and a JSON error; the session is kept and can be resumed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.together import Together

from .conftest import TRANSPORTS, Server, make_token, start_server
from .raw import RawConn

# Run alone (scripts/test's second phase): the counts assume the client sends faster than
# the bucket refills (20/s); side by side (load ~6) the sends were slow enough to earn 6
# more messages, and a fresh session's reconnect a refill.
pytestmark = pytest.mark.alone

RATE, BURST = 20, 40


@pytest.fixture(scope="module")
def strict() -> Iterator[Server]:
    srv = start_server({"AW_FLOOD_RATE": str(RATE), "AW_FLOOD_BURST": str(BURST)})
    yield srv
    srv.stop()


async def closed_with(conn: RawConn) -> dict[str, Any]:
    """The close frame the server sent (skipping whatever came before it)."""
    while True:
        frame = await conn.recv()
        if frame.get("t") in ("close", "_closed"):
            return dict(frame)


def assert_flood_answer(r: httpx.Response | None) -> float:
    """A 429 with Retry-After and the JSON error; returns the Retry-After in seconds."""
    assert r is not None and r.status_code == 429, r
    body = r.json()
    assert body["error"] == "flood" and body["code"] == 4008 and body["message"], body
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= BURST / RATE + 1
    return float(retry)


async def test_flood_is_refused_with_4008_and_the_session_resumes(
    strict: Server, transport: str
) -> None:
    flooder = RawConn(strict.url, transport, make_token(f"flooder-{transport}"))
    bystander = RawConn(strict.url, transport, make_token(f"bystander-{transport}"))
    again = RawConn(strict.url, transport, make_token(f"flooder-{transport}"))
    try:
        hello = await flooder.open()
        assert flooder.neg["flood_rate"] == RATE and flooder.neg["flood_burst"] == BURST
        await bystander.open()
        frames = [{"t": "event", "s": i, "e": "record", "d": i} for i in range(1, 81)]
        if transport == "websocket":
            for i in range(0, 80, 10):
                await flooder.send_raw(json.dumps(frames[i : i + 10]))
            assert (await closed_with(flooder))["c"] == 4008
            # The session was kept: it resumes (after the budget refilled).
            await asyncio.sleep(BURST / RATE)  # the protocol's backoff, not a sync
            resumed = await again.open(resume_last=flooder.last_seq, resume=flooder.neg["token"])
            assert resumed["t"] == "hello" and resumed["sid"] == hello["sid"]
            assert resumed["recovered"] is True
        else:
            statuses = []
            for i in range(0, 80, 10):
                r = await flooder.send_raw(json.dumps(frames[i : i + 10]))
                assert r is not None
                statuses.append(r.status_code)
                if r.status_code != 204:
                    break
            retry = assert_flood_answer(r)
            assert statuses[:-1] == [204] * (len(statuses) - 1) and len(statuses) <= 5
            # Refused whole: the batch is sent again after Retry-After, on the same session.
            await asyncio.sleep(retry)  # what the server asked for, not a sync
            n = len(statuses) - 1
            r = await flooder.send_raw(json.dumps(frames[n * 10 : n * 10 + 10]))
            assert r is not None and r.status_code == 204
            # What the server recorded for this user (asked on a connection of its own:
            # the flooder's polls may have been refused meanwhile, ending its reader).
            await again.open()
            await again.send({"t": "event", "s": 1, "id": 1, "e": "recorded"})
            while (answer := await again.recv())["t"] != "ack":
                pass
            assert answer["d"] == list(range(1, n * 10 + 11))  # nothing lost, nothing twice
        await bystander.send({"t": "event", "s": 1, "id": 1, "e": "echo", "d": "fine"})
        assert (await bystander.recv())["d"] == "fine"
    finally:
        await flooder.close()
        await bystander.close()
        await again.close()


async def test_empty_batches_are_charged_like_any_message(strict: Server, transport: str) -> None:
    # Issue #13, item 4: [] cost nothing, so one connection could send 97,620 a second.
    flooder = RawConn(strict.url, transport, make_token(f"empty-{transport}"))
    try:
        await flooder.open()
        if transport == "websocket":
            for _ in range(2 * BURST):
                await flooder.send_raw("[]")
            assert (await closed_with(flooder))["c"] == 4008
        else:
            statuses = []
            for _ in range(2 * BURST):
                r = await flooder.send_raw("[]")
                assert r is not None
                statuses.append(r.status_code)
                if r.status_code != 204:
                    break
            assert_flood_answer(r)
            assert BURST - 5 <= len(statuses) <= BURST + 5, statuses
    finally:
        await flooder.close()


async def test_pings_polls_and_resumes_are_charged(strict: Server, transport: str) -> None:
    """What costs the server without being a message: WebSocket pings (answered below
    ASGI), ``ping`` frames by POST, long-poll requests; and negotiates that resume."""
    flooder = RawConn(strict.url, transport, make_token(f"pings-{transport}"))
    try:
        await flooder.open()
        if transport == "websocket":
            assert flooder.ws is not None
            with contextlib.suppress(ConnectionClosed):  # the close may come first
                for _ in range(2 * BURST):
                    await flooder.ws.ping()
            assert (await closed_with(flooder))["c"] == 4008
        elif transport == "sse":
            for _ in range(2 * BURST):
                r = await flooder.send({"t": "ping"})
                assert r is not None
                if r.status_code != 204:
                    break
            assert_flood_answer(r)
        else:
            assert flooder._reader is not None
            flooder._reader.cancel()  # the test polls by itself
            token = {"X-Anywire-Token": flooder.neg["token"]}
            # A newer poll answers the one before at once (204): each costs a token.
            responses = await asyncio.gather(
                *(flooder.http.get("/anywire/poll", params={"ack": 0}, headers=token)
                  for _ in range(2 * BURST))
            )  # fmt: skip
            refused = [r for r in responses if r.status_code == 429]
            assert refused and len(refused) <= BURST + 5
            assert_flood_answer(refused[0])
        # Draining the budget with negotiates that resume: each costs a token too.
        for _ in range(2 * BURST):
            r = await flooder.negotiate(resume=flooder.neg["token"])
            if r.status_code != 200:
                break
        assert_flood_answer(r)
    finally:
        await flooder.close()


async def test_pings_before_the_first_message_are_charged(strict: Server) -> None:
    """A WebSocket that never sends its connect frame pays for its pings from a budget of
    its own (WebSocket only: the other transports have no pings below the protocol)."""
    async with connect(strict.url.replace("http", "ws") + "/anywire/ws") as ws:
        with contextlib.suppress(ConnectionClosed):
            for _ in range(2 * BURST):
                await ws.ping()
        async with asyncio.timeout(5):
            await ws.wait_closed()
        assert ws.close_code == 4008


async def _stranger_refusals(strict: Server, transport: str) -> float:
    """``2 * BURST`` requests naming no session, from an address of the transport's own
    (``X-Forwarded-For``, which the server trusts from 127.0.0.1), so the three
    transports' runs go side by side, each on a full budget; returns their seconds."""
    n = 2 * BURST
    address = {"X-Forwarded-For": f"10.23.0.{TRANSPORTS.index(transport) + 1}"}
    async with httpx.AsyncClient(base_url=strict.url, timeout=10) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        if transport == "websocket":
            codes = []
            url = strict.url.replace("http", "ws") + "/anywire/ws"
            for _ in range(n):
                async with connect(url, additional_headers=address) as ws:
                    await ws.send(json.dumps({"t": "connect", "ticket": "forged"}))
                    await ws.wait_closed()
                    codes.append(ws.close_code)
            assert set(codes) == {4007}
        else:
            headers = {"X-Anywire-Token": "forged", **address}
            for _ in range(n):
                if transport == "sse":
                    r = await http.post("/anywire/send", content=b"[]", headers=headers)
                else:
                    r = await http.get("/anywire/poll", params={"ack": 0}, headers=headers)
                assert r.status_code == 410 and r.json()  # the answer does not change
        return loop.time() - start


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def strangers(strict: Server) -> AsyncIterator[Together[float]]:
    together = Together(TRANSPORTS, lambda t: _stranger_refusals(strict, t))
    yield together
    await together.aclose()


@pytest.mark.asyncio(loop_scope="module")
async def test_strangers_are_charged_per_address(
    strangers: Together[float], transport: str
) -> None:
    """Requests that name no session (a forged token, a used ticket) have no session to
    charge: their refusals are charged to the client's address, and held once its budget
    is spent (the answer itself does not change)."""
    elapsed = await strangers.result(transport, 30)
    n = 2 * BURST
    # BURST refusals at once, then RATE a second: the other BURST take BURST / RATE s.
    print(f"\n{transport}: {n} refusals of a stranger in {elapsed:.2f} s")
    assert elapsed >= 0.8 * (n - BURST) / RATE


async def test_a_fresh_session_is_no_way_out_of_a_flood(strict: Server, transport: str) -> None:
    """A client closed for flood that starts a fresh session (no resume) gets the budget
    its user spent, not a full one, until that budget has refilled."""
    user = f"fresh-{transport}"
    flooder = RawConn(strict.url, transport, make_token(user))
    fresh = RawConn(strict.url, transport, make_token(user))
    batch = json.dumps([{"t": "event", "s": i, "e": "record", "d": i} for i in range(1, 11)])
    try:
        await flooder.open()
        for _ in range(2 * BURST // 10):
            r = await flooder.send_raw(batch)
            if r is not None and r.status_code == 429:
                break
        if transport == "websocket":
            assert (await closed_with(flooder))["c"] == 4008
        await fresh.open()  # a new session of the same user, at once
        r = await fresh.send_raw(batch)
        if transport == "websocket":
            assert (await closed_with(fresh))["c"] == 4008
        else:
            assert_flood_answer(r)
    finally:
        await flooder.close()
        await fresh.close()
