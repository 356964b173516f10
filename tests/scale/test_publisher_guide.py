"""docs/scaling.md "Publishing from outside a node": its Python examples run as written,
against a real Redis and a real node, with clients on every transport.

Django and Celery are not dependencies of anywire, so where they are not installed the
test gives the two examples minimal stand-ins for the names they import
(``django.http.JsonResponse``, ``celery.shared_task``); the anywire calls inside them run
for real.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from anywire.clients.python import Client
from tests.e2e.conftest import TRANSPORTS, Server, make_token
from tests.scale.conftest import RedisServer
from tests.scale.test_broadcast import Inbox

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"


def guide_blocks() -> list[str]:
    text = GUIDE.read_text()
    section = text.split("## Publishing from outside a node", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """``django.http.JsonResponse`` and ``celery.shared_task`` when not installed."""
    if importlib.util.find_spec("django") is None:
        http = types.ModuleType("django.http")

        class JsonResponse:
            def __init__(self, data: Any) -> None:
                self.content = json.dumps(data).encode()

        http.JsonResponse = JsonResponse  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "django", types.ModuleType("django"))
        monkeypatch.setitem(sys.modules, "django.http", http)
    if importlib.util.find_spec("celery") is None:
        celery = types.ModuleType("celery")
        celery.shared_task = lambda **options: lambda fn: fn  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "celery", celery)


async def test_the_guide_examples_reach_clients(
    nodes: list[Server], redis: RedisServer, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = guide_blocks()
    assert len(blocks) == 5
    monkeypatch.setenv("REDIS_URL", redis.url)
    stand_ins(monkeypatch)
    scope: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), scope)

    user = f"guide-{transport}"
    order = TRANSPORTS.index(transport) + 1  # one order per run: the id= is per order
    client = Client(nodes[1].url, make_token(user), transports=(transport,))
    inbox = Inbox(client, "order.shipped", "notice", "progress")
    async with client:
        await client.join(f"order-{order}")
        await client.join(f"job-{transport}")
        # The sync examples run in a plain thread, as in a Django or Celery worker.
        response = await asyncio.to_thread(scope["ship"], None, order)
        again = await asyncio.to_thread(scope["ship"], None, order)  # same id=: not twice
        assert json.loads(response.content) == json.loads(again.content)
        await asyncio.to_thread(scope["notify"], user, "hello", f"n-{transport}")
        failed = await asyncio.to_thread(scope["notify_all"], [user], "bulk", f"b-{transport}")
        assert failed == []
        await scope["report_progress"](transport, 3)
        await inbox.until(lambda: len(inbox.of("progress")) == 3)
        await inbox.until(lambda: inbox.of("notice") == [{"text": "hello"}, {"text": "bulk"}])
        assert inbox.of("order.shipped") == [{"order": order}]
        assert [p["done"] for p in inbox.of("progress")] == [1, 2, 3]
    scope["publisher"].close()
