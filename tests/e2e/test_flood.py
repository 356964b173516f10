"""Floods: a client that sends faster than the configured rate is cut off with 4506 (and
HTTP 429), and the server keeps serving everyone else."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import Server, make_token, start_server
from .raw import RawConn


@pytest.fixture(scope="module")
def strict() -> Iterator[Server]:
    srv = start_server({"AW_FLOOD_RATE": "20", "AW_FLOOD_BURST": "40"})
    yield srv
    srv.stop()


async def test_flood_is_cut_off_and_others_unharmed(strict: Server, transport: str) -> None:
    flooder = RawConn(strict.url, transport, make_token("flooder"))
    bystander = RawConn(strict.url, transport, make_token("bystander"))
    try:
        await flooder.open()
        await bystander.open()
        frames = [{"t": "event", "s": i, "e": "record", "d": i} for i in range(1, 81)]
        if transport == "websocket":
            for i in range(0, 80, 10):
                await flooder.send_raw(json.dumps(frames[i : i + 10]))
            frame = await flooder.recv()
            assert frame["t"] == "close" and frame["c"] == 4506
        else:
            statuses = []
            for i in range(0, 80, 10):
                r = await flooder.send_raw(json.dumps(frames[i : i + 10]))
                assert r is not None
                statuses.append(r.status_code)
                if r.status_code != 204:
                    break
            assert statuses[-1] == 429
            # The session is gone, and a late request still learns why.
            r = await flooder.send({"t": "ping"})
            assert r is not None and r.status_code == 429 and r.json()["code"] == 4506
        await bystander.send({"t": "event", "s": 1, "id": 1, "e": "echo", "d": "fine"})
        assert (await bystander.recv())["d"] == "fine"
    finally:
        await flooder.close()
        await bystander.close()


async def test_empty_batches_are_charged_like_any_message(strict: Server, transport: str) -> None:
    # Issue #13, item 4: [] cost nothing, so one connection could send 97,620 a second.
    flooder = RawConn(strict.url, transport, make_token(f"empty-{transport}"))
    try:
        await flooder.open()
        if transport == "websocket":
            for _ in range(80):  # twice the burst
                await flooder.send_raw("[]")
            frame = await flooder.recv()
            assert frame["t"] == "close" and frame["c"] == 4506
        else:
            statuses = []
            for _ in range(80):
                r = await flooder.send_raw("[]")
                assert r is not None
                statuses.append(r.status_code)
                if r.status_code != 204:
                    break
            assert statuses[-1] == 429 and len(statuses) <= 45, statuses
    finally:
        await flooder.close()
