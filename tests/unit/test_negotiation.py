"""Negotiation policy: transport order and codec choice."""

from __future__ import annotations

from anywire.core.negotiation import NegotiationRequest, choose_codec, order_transports
from anywire.core.settings import TRANSPORTS

ALL = ("websocket", "sse", "longpoll")


def test_default_order_is_the_servers_preference() -> None:
    assert TRANSPORTS == ALL
    assert order_transports(ALL, ALL, ()) == list(ALL)
    assert order_transports(("longpoll", "websocket"), ALL, ()) == ["longpoll", "websocket"]


def test_failed_transports_go_last_in_the_order_they_failed() -> None:
    assert order_transports(ALL, ALL, ["websocket"]) == ["sse", "longpoll", "websocket"]
    assert order_transports(ALL, ALL, ["sse", "websocket"]) == ["longpoll", "sse", "websocket"]
    assert order_transports(ALL, ALL, ["longpoll", "sse", "websocket"]) == [
        "longpoll",
        "sse",
        "websocket",
    ]


def test_repeated_failures_are_listed_once() -> None:
    assert order_transports(ALL, ALL, ["websocket", "websocket"]) == [
        "sse",
        "longpoll",
        "websocket",
    ]


def test_disabled_transports_are_never_offered() -> None:
    enabled = ("sse", "longpoll")
    assert order_transports(enabled, ALL, ()) == ["sse", "longpoll"]
    assert order_transports(enabled, ALL, ["websocket"]) == ["sse", "longpoll"]
    assert order_transports(enabled, ALL, ["websocket", "sse"]) == ["longpoll", "sse"]
    assert order_transports((), ALL, ()) == []


def test_client_capabilities_are_respected() -> None:
    assert order_transports(ALL, ["longpoll"], ()) == ["longpoll"]
    assert order_transports(ALL, ["sse", "websocket"], ()) == ["websocket", "sse"]
    assert order_transports(ALL, ["sse"], ["websocket", "sse"]) == ["sse"]
    assert order_transports(ALL, [], ()) == []
    assert order_transports(ALL, ["carrier-pigeon"], ["carrier-pigeon"]) == []


def test_codec_choice_follows_the_client_preference() -> None:
    server = ("msgpack", "json")
    assert choose_codec(server, ["msgpack", "json"]) == "msgpack"
    assert choose_codec(server, ["json", "msgpack"]) == "json"
    assert choose_codec(("json",), ["msgpack", "json"]) == "json"
    assert choose_codec(server, ["cbor", "msgpack"]) == "msgpack"


def test_codec_falls_back_to_json() -> None:
    assert choose_codec(("msgpack", "json"), []) == "json"
    assert choose_codec(("msgpack", "json"), ["cbor"]) == "json"


def test_request_defaults() -> None:
    req = NegotiationRequest()
    assert req.transports == ALL and req.codecs == ("json",) and req.failed == ()
