"""Two clients through the load balancer: each says hello, both hear both.

    python3 examples/cluster_client.py http://127.0.0.1:8000 [transport]
"""

from __future__ import annotations

import asyncio
import sys

from anywire.clients.python import Client


async def main(url: str, transport: str) -> None:
    heard: list[str] = []
    done = asyncio.Event()
    clients = [Client(url, transports=(transport,)) for _ in range(2)]
    for client in clients:
        client.on("said")(lambda msg: (heard.append(msg["text"]), len(heard) == 4 and done.set()))
    for client in clients:
        await client.connect()
    for i, client in enumerate(clients):
        node = await client.call("say", f"hello from client {i}", timeout=5)
        print(f"client {i} ({transport}) said hello via node {node}")
    async with asyncio.timeout(10):
        await done.wait()
    print("heard:", sorted(heard))
    print("lobby:", len(await clients[0].call("who", timeout=5)), "members")
    for client in clients:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "longpoll"))
