"""permessage-deflate on the WebSocket (``anywire serve --ws-deflate``, ``Client(...,
ws_deflate=True)``): negotiated only when both sides ask, and the session behaves the
same either way (events in order, acks both ways). What crossed the wire is read at a
recording TCP proxy: the 101's extension header and whether a repetitive payload shows
up in plain text."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from anywire.clients.python import Client
from anywire.server.cliopts import WS_DEFLATE_ENV, deflate_args, wanted_deflate
from tests.netfault import FaultProxy

from .conftest import ROOT, Server, make_token, start_server
from .exercise import Exercise
from .raw import deflate_agreed

WAIT = 10.0
# A chat line said over and over: deflate shrinks it to a fraction; plain, it is on the
# wire as it is (MessagePack keeps strings as they are, like JSON).
TEXT = "see you at the station at nine, bring the tickets please! " * 8


@pytest.fixture(scope="module")
def deflating() -> Iterator[Server]:
    """A server that lets clients negotiate permessage-deflate."""
    srv = start_server({}, args=("--ws-deflate",))
    yield srv
    srv.stop()


@pytest.fixture
def recording(request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    proxy = FaultProxy(request.getfixturevalue(request.param).port, record=True)
    yield proxy
    proxy.close()


def _upgrade_answer(recorded: bytes) -> bytes:
    """The head of the server's ``101 Switching Protocols``."""
    start = recorded.index(b"HTTP/1.1 101")
    return recorded[start : recorded.index(b"\r\n\r\n", start)].lower()


@pytest.mark.parametrize("codec", ["json", "msgpack"])
@pytest.mark.parametrize("offer", [True, False], ids=["client-offers", "client-silent"])
@pytest.mark.parametrize("recording", ["deflating", "server"], indirect=True)
async def test_deflate_negotiated_only_when_both_ask(
    recording: FaultProxy, request: pytest.FixtureRequest, offer: bool, codec: str
) -> None:
    server_allows = request.node.callspec.params["recording"] == "deflating"
    client = Client(
        recording.url,
        token=lambda: make_token("deflate"),
        transports=("websocket",),
        codec=codec,
        ws_deflate=offer,
    )
    exercise = Exercise(client, 300)
    try:
        await client.connect()
        assert client.transport == "websocket"
        await exercise.run(TEXT, WAIT)  # acks both ways, 300 events in order
    finally:
        await client.close()
    wire = bytes(recording.recorded)
    negotiated = server_allows and offer
    assert (b"permessage-deflate" in _upgrade_answer(wire)) is negotiated
    assert (TEXT.encode() in wire) is not negotiated


async def test_a_decompression_bomb_is_closed_1009(deflating: Server) -> None:
    """A message that inflates past the size limit: the connection is closed with 1009
    (message too big) as soon as the limit is passed, never inflated whole, and the
    server goes on serving."""
    async with httpx.AsyncClient(base_url=deflating.url, timeout=WAIT) as http:
        neg = await http.post(
            "/anywire/negotiate",
            json={"codecs": ["json"], "transports": ["websocket"]},
            headers={"Authorization": f"Bearer {make_token('bomb')}"},
        )
        neg.raise_for_status()
        ticket, session = neg.json()["ticket"], neg.json()["token"]
    url = deflating.url.replace("http", "ws") + f"/anywire/ws?ticket={ticket}"
    async with connect(url, compression="deflate", ping_interval=None) as ws:
        assert "permessage-deflate" in (ws.response.headers.get("sec-websocket-extensions") or "")
        await ws.send(json.dumps({"t": "connect", "ticket": ticket}))
        hello = json.loads(await ws.recv())
        assert (hello[0] if isinstance(hello, list) else hello)["t"] == "hello"
        await ws.send("0" * 8_000_000)  # 8 MB of text, some 8 KB deflated
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with httpx.AsyncClient(base_url=deflating.url, timeout=WAIT) as http:
        again = await http.post(
            "/anywire/negotiate",
            json={"codecs": ["json"], "transports": ["websocket"], "resume": session},
            headers={"Authorization": f"Bearer {make_token('bomb')}"},
        )
    assert again.json()["resumable"] is True  # the session outlived its connection
    client = Client(deflating.url, token=lambda: make_token("after"), transports=("websocket",))
    try:
        await client.connect()
        assert await client.call("echo", "still here") == "still here"
    finally:
        await client.close()


async def test_max_frame_size_counts_the_inflated_message(deflating: Server) -> None:
    """A message over ``max_frame_size`` once inflated (16 KB in the test app), though a
    few hundred bytes on the wire and below the WebSocket limit: 4503, as plain."""
    async with httpx.AsyncClient(base_url=deflating.url, timeout=WAIT) as http:
        neg = await http.post(
            "/anywire/negotiate",
            json={"codecs": ["json"], "transports": ["websocket"]},
            headers={"Authorization": f"Bearer {make_token('big')}"},
        )
        ticket = neg.json()["ticket"]
    url = deflating.url.replace("http", "ws") + f"/anywire/ws?ticket={ticket}"
    async with connect(url, compression="deflate", ping_interval=None) as ws:
        await ws.send(json.dumps({"t": "connect", "ticket": ticket}))
        await ws.recv()  # the hello
        frame = {"t": "ev", "s": 1, "e": "echo", "d": "y" * 20_000}
        await ws.send(json.dumps(frame))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503


def _serve_refused(env: dict[str, str], *args: str, app: str = "tests.e2e.testapp:app") -> str:
    """Start ``anywire serve`` expecting a refusal at start; its error output."""
    proc = subprocess.run(
        [sys.executable, "-m", "anywire.server.cli", "serve", app, "--port", "1", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    return proc.stderr.decode()


def test_a_bad_environment_value_is_refused_at_start() -> None:
    err = _serve_refused({"ANYWIRE_WS_DEFLATE": "maybe"})
    assert "ANYWIRE_WS_DEFLATE='maybe'" in err and "1/true/yes/on" in err


def test_an_app_without_anywire_is_refused() -> None:
    err = _serve_refused({}, "--ws-deflate", app="json:dumps")
    assert "holds no Anywire instance for --ws-deflate" in err


async def test_a_litestar_app_in_a_mount_deflates() -> None:
    """The flag reaches anywire through a Litestar app's plugin, mounted under a prefix."""
    srv = start_server(
        {"AW_PATH": "/rt"},
        app="tests.e2e.mountapp:litestar_mounted",
        args=("--ws-deflate",),
        health="/outer/rt/health",
    )
    proxy = FaultProxy(srv.port, record=True)
    client = Client(
        proxy.url + "/outer",
        token=lambda: make_token("mounted"),
        path="/rt",
        transports=("websocket",),
        ws_deflate=True,
    )
    try:
        await client.connect()
        assert await client.call("echo", TEXT) == TEXT
    finally:
        await client.close()
        proxy.close()
        srv.stop()
    wire = bytes(proxy.recorded)
    assert b"permessage-deflate" in _upgrade_answer(wire)
    assert TEXT.encode() not in wire


def test_flag_environment_and_app_setting() -> None:
    """The flag wins over the environment, which wins over the app's Settings (None)."""
    on, off, unset = (argparse.Namespace(ws_deflate=v) for v in (True, False, None))
    assert wanted_deflate(off, {WS_DEFLATE_ENV: "1"}) is False
    assert wanted_deflate(on, {WS_DEFLATE_ENV: "off"}) is True
    assert wanted_deflate(unset, {WS_DEFLATE_ENV: " Yes "}) is True
    assert wanted_deflate(unset, {WS_DEFLATE_ENV: "0"}) is False
    assert wanted_deflate(unset, {WS_DEFLATE_ENV: ""}) is None
    assert wanted_deflate(unset, {}) is None
    # What a --workers parent hands each worker: the resolved value, or nothing.
    assert deflate_args(on) == ["--ws-deflate"]
    assert deflate_args(off) == ["--no-ws-deflate"]


async def test_the_environment_turns_it_on() -> None:
    srv = start_server({WS_DEFLATE_ENV: "on"})
    try:
        extensions = await deflate_agreed(srv.url, make_token("env"))
        assert extensions.startswith("permessage-deflate")
    finally:
        srv.stop()
