"""The answer to a call made on another node, given to the session's node: no receipt
covers it (``rx`` on a WebSocket, the 204 to ``POST /send``) until it has left for the
caller's node. A receipt lets the client forget the answer; given earlier, a SIGKILL of
this node in between lost the answer for good and the caller timed out (CI,
tests/scale/test_node_faults.py crash-call [longpoll]).

Real host and memory broker; the caller's node is a recording fake cluster whose
delivery waits on a gate (a Redis PUBLISH not yet done)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from anywire.core.frames import Ack, Connect
from anywire.server.app import Anywire
from anywire.transports.base import Link
from anywire.transports.upstream import SendEndpoint
from anywire.transports.websocket import INFO as WEBSOCKET

from .helpers import frames, issue

CALLER = ("node-b", "call-token")


class GatedCluster:
    """Records the outcomes handed to other nodes; each delivery returns once ``gate``
    is set (until then it is "on its way")."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.delivered: list[tuple[str, str, dict[str, Any]]] = []
        self.spawned: set[asyncio.Future[None]] = set()

    async def deliver_outcome(self, node: str, token: str, outcome: dict[str, Any]) -> None:
        self.started.set()
        await self.gate.wait()
        self.delivered.append((node, token, outcome))

    def send_outcome(self, node: str, token: str, outcome: dict[str, Any]) -> None:
        self.spawned.add(asyncio.ensure_future(self.deliver_outcome(node, token, outcome)))

    async def drain(self, timeout: float) -> None:
        return None



async def _started() -> tuple[Anywire, GatedCluster, Link, str, str]:
    aw = Anywire(anonymous=True)
    await aw.start()
    issued = await issue(aw)
    link = Link(WEBSOCKET, aw.host.codec("json"))
    await aw.host.attach(link, Connect(issued.ticket))
    frames(aw, link)  # the hello
    cluster = GatedCluster()
    aw.host.cluster = cluster  # type: ignore[assignment]
    # A call from node-b was delivered to this session as offset 5 of its stream.
    aw.host.calls.delivered(issued.sid, 5, CALLER)
    return aw, cluster, link, issued.sid, issued.token


async def _stop(aw: Anywire) -> None:
    aw.host.cluster = None
    await aw.stop(grace=0.1)


def _receipts(frames: list[dict[str, Any]]) -> list[int]:
    return [f["n"] for f in frames if f["t"] == "rx"]


async def test_no_rx_covers_an_answer_until_it_has_left_for_the_callers_node() -> None:
    aw, cluster, link, sid, _ = await _started()
    try:
        aw.host.feed(sid, [Ack(s=1, id=5, ok=True, d="yes")])
        await asyncio.wait_for(cluster.started.wait(), 5)
        assert _receipts(frames(aw, link)) == []  # on its way: the client keeps it
        cluster.gate.set()
        async with asyncio.timeout(5):
            while not _receipts(got := frames(aw, link)):
                await link.wait(0.05)
        assert _receipts(got) == [1]
        assert cluster.delivered == [("node-b", "call-token", {"ok": True, "d": "yes"})]
    finally:
        await _stop(aw)


class PostPeer:
    """One ``POST /send``: its body, then what the endpoint sent back (recorded)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent: list[dict[str, Any]] = []
        self.answered = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.start":
            self.answered.set()


async def test_a_post_carrying_an_answer_is_answered_204_once_the_answer_has_left() -> None:
    aw, cluster, _, _, token = await _started()
    try:
        peer = PostPeer(json.dumps({"t": "ack", "s": 1, "id": 5, "ok": True, "d": "yes"}).encode())
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/anywire/send",
            "query_string": b"",
            "headers": [(b"x-anywire-token", token.encode()),
                        (b"content-type", b"application/json")],
        }  # fmt: skip
        post = asyncio.ensure_future(SendEndpoint(aw.host)(scope, peer.receive, peer.send))
        await asyncio.wait_for(cluster.started.wait(), 5)
        # The client forgets what a 204 covers: not before the answer left this node.
        assert not peer.answered.is_set()
        cluster.gate.set()
        await asyncio.wait_for(post, 5)
        assert peer.sent[0]["status"] == 204
        assert cluster.delivered == [("node-b", "call-token", {"ok": True, "d": "yes"})]
    finally:
        await _stop(aw)


async def test_an_answer_to_a_caller_on_this_node_holds_nothing_back() -> None:
    aw, cluster, link, sid, _ = await _started()
    try:
        call = asyncio.ensure_future(aw.call(sid, "ask", "q", timeout=5))
        async with asyncio.timeout(5):
            while not (asks := [f for f in frames(aw, link) if f.get("e") == "ask"]):
                await link.wait(0.05)
        aw.host.feed(sid, [Ack(s=1, id=asks[0]["id"], ok=True, d="here")])
        assert await asyncio.wait_for(call, 5) == "here"
        assert _receipts(frames(aw, link)) == [1]  # at once: nothing travels
        assert not cluster.started.is_set()
    finally:
        await _stop(aw)
