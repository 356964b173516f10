"""The anywire asyncio client.

::

    from anywire.clients.python import Client

    client = Client("http://127.0.0.1:8000", token=get_jwt)

    @client.on("chat")
    def on_chat(message):
        print(message)

    await client.connect()
    await client.join("lobby")
    reply = await client.call("chat", {"room": "lobby", "text": "hi"})
    await client.close()

The client negotiates, falls back from WebSocket to SSE to long-polling, reconnects with
jittered backoff, resumes the session (nothing lost, nothing duplicated) and buffers what
is emitted while offline, up to ``max_queue`` frames.
"""

from .backoff import backoff
from .client import Client, State
from .errors import (
    AckError,
    AckTimeout,
    AuthError,
    ClientError,
    ConnectError,
    ConnectionClosed,
    FrameTooLarge,
    QueueFull,
    RequestLost,
)
from .handlers import EventInfo

__all__ = [
    "AckError",
    "AckTimeout",
    "AuthError",
    "Client",
    "ClientError",
    "ConnectError",
    "ConnectionClosed",
    "EventInfo",
    "FrameTooLarge",
    "QueueFull",
    "RequestLost",
    "State",
    "backoff",
]
