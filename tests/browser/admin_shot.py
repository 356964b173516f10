"""The screenshot of docs/admin.md, from a real run: two nodes on a Redis with the admin
view on, Python clients on every transport in a few rooms on both nodes (a quarter
leave, three fall back to SSE and resume after a cut), the page of the first node in
headless Chromium.

    python3 -m tests.browser.admin_shot docs/img/admin.png
"""

from __future__ import annotations

import asyncio
import sys
import time

from playwright.sync_api import sync_playwright

from anywire.clients.python import Client
from tests.e2e.conftest import TRANSPORTS, free_port, make_token
from tests.netfault import FaultProxy
from tests.scale.conftest import RedisServer, start_nodes

from .conftest import ARGS, CHROMIUM
from .test_admin import TOKEN, Loop, _fall_back_and_resume

ROOMS = {"lobby": 9, "support": 5, "ops": 3, "game-42": 2}


async def _crowd(urls: list[str]) -> list[Client]:
    clients = []
    n = 0
    for room, size in ROOMS.items():
        for _ in range(size):
            transport = TRANSPORTS[n % 3] if n % 5 else "websocket"
            url = urls[n % 4 == 0]  # a quarter on the second node
            client = Client(url, make_token(f"user{n}"), transports=(transport,))
            await client.connect()
            await client.join(room)
            clients.append(client)
            n += 1
    return clients


async def _close(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


def main(path: str) -> None:
    redis = RedisServer(free_port())
    redis.start()
    env = {"ANYWIRE_ADMIN_TOKEN": TOKEN, "AW_ADMIN_INTERVAL": "1"}
    nodes = start_nodes(redis, env=env)
    urls = [node.url for node in nodes]
    proxy = FaultProxy(nodes[0].port, hole_after_101=True)
    loop = Loop()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            context = browser.new_context(
                http_credentials={"username": "admin", "password": TOKEN},
                viewport={"width": 1200, "height": 760},
            )
            page = context.new_page()
            page.goto(urls[0] + "/anywire/admin")
            page.wait_for_function("() => document.body.dataset.nodes === '2'")
            clients: list[Client] = []
            for _ in range(4):  # arrivals over a few seconds, so the history has a shape
                clients += loop.run(_crowd(urls))
                time.sleep(2)
            for _ in range(3):  # WebSocket swallowed, on SSE, cut and resumed
                clients.append(loop.run(_fall_back_and_resume(proxy)))
            for client in clients[::4]:
                loop.run(client.close())
            time.sleep(3)
            page.screenshot(path=path)
            browser.close()
        loop.run(_close(clients))
    finally:
        loop.close()
        proxy.close()
        for node in nodes:
            node.stop()
        redis.kill()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/admin.png")
