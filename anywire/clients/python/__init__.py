"""The anywire asyncio client.

::

    client = Client("http://127.0.0.1:8000", token=get_jwt)
    client.on("chat")(print)
    await client.connect()
    reply = await client.call("chat", {"room": "lobby", "text": "hi"})
"""

from .backoff import backoff
from .client import Client
from .errors import (
    AckError,
    AckTimeout,
    AuthError,
    ClientError,
    ConnectError,
    ConnectionClosed,
    QueueFull,
)

__all__ = [
    "AckError",
    "AckTimeout",
    "AuthError",
    "Client",
    "ClientError",
    "ConnectError",
    "ConnectionClosed",
    "QueueFull",
    "backoff",
]
