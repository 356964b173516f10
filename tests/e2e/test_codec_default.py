"""The Python client's default codec: MessagePack wherever the server offers it
(WebSocket and long-poll; SSE is a text stream, always JSON), with the same behaviour as
JSON (events in order, acks both ways). What crossed the wire is read at a recording TCP
proxy: the codec negotiate granted, and the payload's MessagePack bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from anywire.clients.python import Client
from tests.netfault import FaultProxy

from .conftest import Server, make_token
from .exercise import Exercise

WAIT = 10.0
TEXT = "see you at the station at nine, bring the tickets please!"


@pytest.fixture
def recording(server: Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(server.port, record=True)
    yield proxy
    proxy.close()


def _negotiated(wire: bytes) -> dict[str, Any]:
    """The first negotiate answer on the wire (a JSON body after a 200)."""
    start = wire.index(b'{"v": 1, "sid"')
    return dict(json.JSONDecoder().raw_decode(wire[start:].decode("latin-1"))[0])


async def test_the_default_is_msgpack_where_offered(recording: FaultProxy, transport: str) -> None:
    client = Client(recording.url, token=lambda: make_token("codec"), transports=(transport,))
    exercise = Exercise(client, 100)
    try:
        await client.connect()
        await exercise.run(TEXT, WAIT)
    finally:
        await client.close()
    wire = bytes(recording.recorded)
    neg = _negotiated(wire)
    expected = "json" if transport == "sse" else "msgpack"
    assert neg["codec"] == "msgpack"  # the session's codec: what the client asked first
    assert [t["codec"] for t in neg["transports"]] == [expected]
    packed, quoted = msgpack.packb(TEXT), json.dumps(TEXT).encode()
    assert (packed in wire) is (expected == "msgpack")
    assert (quoted in wire) is (expected == "json")
