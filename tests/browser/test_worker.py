"""The client module, unchanged, inside a dedicated Web Worker in real Chromium, on every
transport: connect, acks both ways, a room event, the connection dropped and the session
resumed, a room event after. A worker has no window, document or sessionStorage, so the
client runs with storage none and no page-visibility or online events (tests/browser/worker.js).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import TRANSPORTS

from .drive import js

# Starts /worker.js as a module Worker, hands it the scenario and waits for its answer
# (bounded: a worker that never answers fails the test instead of hanging it).
RUN_IN_WORKER = """new Promise((resolve, reject) => {
  const worker = new Worker("/worker.js", { type: "module" });
  const timer = setTimeout(() => reject(new Error("no answer from the worker in 20 s")), 20000);
  const done = (settle, value) => { clearTimeout(timer); worker.terminate(); settle(value); };
  worker.onmessage = (ev) => done(resolve, ev.data);
  worker.onerror = (ev) =>
    done(reject, new Error("worker failed: " + (ev.message || "did not load")));
  worker.postMessage(arg);
})"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_in_a_dedicated_worker(page: Page, transport: str) -> None:
    answer: dict[str, Any] = js(
        page, RUN_IN_WORKER, {"transport": transport, "sub": f"w-{transport}"}
    )
    assert "error" not in answer, answer.get("error")
    result = answer["result"]
    # what a dedicated worker has: the network globals, none of the page's
    assert result["globals"] == {
        "window": "undefined", "document": "undefined", "sessionStorage": "undefined",
        "WebSocket": "function", "EventSource": "function", "fetch": "function",
    }  # fmt: skip
    assert result["transport"] == transport
    assert result["echo"] == {"hello": "worker"}
    assert result["asked"] == {"reply": 42}  # the server's call, acked from the worker
    assert result["news"] == {"n": 1}
    assert result["recovered"] is True  # resumed with storage none
    assert result["resumedOn"] == transport
    assert result["news2"] == {"n": 2}
