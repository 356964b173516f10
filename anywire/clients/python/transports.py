"""The client transports by protocol name (the names negotiate uses)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .endpoints import transport_base
from .longpoll import LongPollTransport
from .sse import SSETransport
from .transport import ClientTransport, TransportClosed
from .websocket import WebSocketTransport

if TYPE_CHECKING:
    from .client import Client
    from .wire import Negotiated, Offer

__all__ = [
    "TRANSPORT_CLASSES",
    "ClientTransport",
    "LongPollTransport",
    "SSETransport",
    "TransportClosed",
    "WebSocketTransport",
    "new_transport",
]

TRANSPORT_CLASSES: dict[str, type[ClientTransport]] = {
    "websocket": WebSocketTransport,
    "sse": SSETransport,
    "longpoll": LongPollTransport,
}


def new_transport(client: Client, neg: Negotiated, offer: Offer) -> ClientTransport:
    """A transport for ``offer`` of ``neg``, set up with the client's codecs, HTTP client,
    headers, pacer, proxy and deflate choice (not yet opened)."""
    transport = TRANSPORT_CLASSES[offer.name](
        transport_base(client.url, client.path, neg),
        offer.url,
        neg,
        client._codecs[offer.codec],
        client._codecs,
        client._http_client(),
        client.headers,
    )
    transport.pacer = client.pacer
    transport.proxy = client.proxy
    transport.deflate = client.ws_deflate
    return transport
