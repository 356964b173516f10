"""The test app with the push example of docs/guide.md ("Offline delivery: push
notifications") as its ``on_undelivered`` hook, run as written: the code block is read
from the guide and executed with ``aw`` and a recording stand-in for ``push_service``
(tests/e2e/test_push_example.py). ``pushes`` returns what the push service was asked
to send."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from anywire.server import Socket
from tests.e2e.testapp import app, aw

__all__ = ["app", "guide_example"]

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"


def guide_example() -> str:
    """The guide's Python block that registers an ``on_undelivered`` hook."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    found = [b for b in blocks if "@aw.on_undelivered" in b]
    if len(found) != 1:
        raise LookupError(f"docs/guide.md has {len(found)} on_undelivered examples, not 1")
    return str(found[0])


class RecordingPushService:
    """A push service that records what it is asked to send (what a real one, APNs or
    FCM behind an SDK, would deliver to the user's devices)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, user: str, **notification: Any) -> None:
        self.sent.append({"user": user, **notification})


push_service = RecordingPushService()
exec(compile(guide_example(), str(GUIDE), "exec"), {"aw": aw, "push_service": push_service})


@aw.on("pushes")
async def pushes(sock: Socket, data: Any) -> list[dict[str, Any]]:
    return push_service.sent
