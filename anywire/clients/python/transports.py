"""The client transports by protocol name (the names negotiate uses)."""

from __future__ import annotations

from .longpoll import LongPollTransport
from .sse import SSETransport
from .transport import ClientTransport, TransportClosed
from .websocket import WebSocketTransport

__all__ = [
    "TRANSPORT_CLASSES",
    "ClientTransport",
    "LongPollTransport",
    "SSETransport",
    "TransportClosed",
    "WebSocketTransport",
]

TRANSPORT_CLASSES: dict[str, type[ClientTransport]] = {
    "websocket": WebSocketTransport,
    "sse": SSETransport,
    "longpoll": LongPollTransport,
}
