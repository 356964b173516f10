"""One behaviour check for a connected-to-be Python client, shared by the tests that vary
what is underneath (the codec, WebSocket deflate): an echo (client to server, acked), a
call from the server (acked by the client) and a burst of ``n`` numbered events from the
server, delivered in order, none lost or repeated (tests/e2e/testapp.py's ``echo``,
``ask`` and ``burst``)."""

from __future__ import annotations

import asyncio
from typing import Any

from anywire.clients.python import Client

__all__ = ["Exercise"]


class Exercise:
    """Registers the client's handlers at once (before ``connect``); :meth:`run` drives
    the round trips once the client is connected."""

    def __init__(self, client: Client, n: int) -> None:
        self.client, self.n = client, n
        self.got: list[Any] = []
        self.done = asyncio.Event()

        @client.on("n")
        def numbered(i: int) -> None:
            self.got.append(i)
            if len(self.got) == n:
                self.done.set()

        @client.on("question")
        def question(data: Any) -> Any:
            return {"echoed": data}

    async def run(self, text: str, wait: float) -> None:
        """Echo ``text``, have the server ask the client, then the burst (bounded wait)."""
        client = self.client
        assert await client.call("echo", text) == text
        asked = await client.call("ask", {"event": "question", "data": text})
        assert asked == {"reply": {"echoed": text}}
        await client.emit("burst", {"n": self.n})
        async with asyncio.timeout(wait):
            await self.done.wait()
        assert self.got == list(range(self.n))
