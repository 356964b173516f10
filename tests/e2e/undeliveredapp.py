"""The test app with an ``on_undelivered`` hook (tests/e2e/test_undelivered.py,
tests/scale/test_undelivered_nodes.py): the hook records each call, ``undelivered``
returns the records, ``live`` how many connections of a user are attached here."""

from __future__ import annotations

from typing import Any

from anywire.core.session import SessionState
from anywire.server import Socket, UndeliveredEvent
from tests.e2e.testapp import app, aw

__all__ = ["app"]

calls: list[dict[str, Any]] = []


@aw.on_undelivered
def push(user: str, event: UndeliveredEvent) -> None:
    if event.data == "boom":
        raise RuntimeError("push service down")  # logged; delivery goes on
    calls.append(
        {
            "user": user,
            "ns": event.namespace,
            "event": event.event,
            "data": event.data,
            "stream": event.stream,
            "epoch": event.epoch,
            "offset": event.offset,
            "node": aw.node_id,
        }
    )


@aw.on("undelivered")
async def undelivered(sock: Socket, data: Any) -> list[dict[str, Any]]:
    return calls


@aw.on("live")
async def live(sock: Socket, user: str) -> int:
    sids = aw.host.users.get(("/", user), set())
    return sum(aw.host.sessions[s].state is SessionState.ATTACHED for s in sids)
