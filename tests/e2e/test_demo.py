"""``anywire demo``: the README's first command, through the Litestar plugin, on every
transport."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from anywire import __version__

from .conftest import running_demo
from .raw import RawConn


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    with running_demo() as url:
        yield url


def test_page_and_anonymous_negotiate(demo: str) -> None:
    page = httpx.get(demo + "/")
    assert page.status_code == 200 and "anywire chat" in page.text
    # the page imports the browser client from the URL the server serves it at
    client = httpx.get(demo + f"/anywire/client/{__version__}/anywire.js")
    assert f'from "/anywire/client/{__version__}/anywire.js"' in page.text
    assert client.status_code == 200
    assert client.headers["content-type"] == "text/javascript; charset=utf-8"
    assert page.headers["content-type"].startswith("text/html")
    offer = httpx.post(demo + "/anywire/negotiate", json={}).json()
    assert [t["name"] for t in offer["transports"]] == ["websocket", "sse", "longpoll"]


async def test_chat_between_two_anonymous_users(demo: str, transport: str) -> None:
    alice, bob = RawConn(demo, transport, None), RawConn(demo, transport, None)
    try:
        await alice.open()
        await bob.open()
        for conn in (alice, bob):
            await conn.send({"t": "join", "s": 1, "id": 1, "r": "lobby"})
            assert (await conn.recv())["ok"] is True
        await alice.send(
            {"t": "event", "s": 2, "id": 2, "e": "chat", "d": {"room": "lobby", "text": "hi bob"}}
        )
        while True:
            frame = await bob.recv()
            if frame.get("e") == "chat":
                break
        assert frame["d"]["text"] == "hi bob" and frame["d"]["from"].startswith("guest-")
        while True:
            ack = await alice.recv()
            if ack.get("t") == "ack":
                break
        assert ack["ok"] is True and ack["d"]["id"] == frame["d"]["id"]
    finally:
        await alice.close()
        await bob.close()
