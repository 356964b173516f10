"""Catch-up from history into a fresh subscription: the host replays exactly what its
node has already delivered live, so later offsets arrive live, once (a recording broker
whose delivery lags or leads its history, no network)."""

from __future__ import annotations

from collections.abc import Callable

from anywire.core.auth import Identity
from anywire.core.frames import Connect
from anywire.server.app import Anywire
from anywire.server.broker import Envelope
from anywire.server.broker_memory import MemoryBroker
from anywire.transports.base import Link
from anywire.transports.websocket import INFO as WEBSOCKET

STREAM = "room:/:r"


def _env(offset: int) -> Envelope:
    return Envelope("room", "/", "r", "e", offset, pos=(STREAM, "ep", offset))


class LaggingBroker:
    """History holds offsets 1..``head``; the node has delivered up to ``delivered``
    (each history read may move both, as live traffic would)."""

    def __init__(self, steps: list[tuple[int, int | None]]) -> None:
        self.steps = steps  # (head, delivered) per history read
        self.reads = 0
        self.seeded: tuple[str, str, int] | None = None
        self.delivered: int | None = None

    async def start(self, deliver: Callable[[Envelope], None]) -> None: ...
    async def publish(self, envelope: Envelope) -> None: ...
    async def stop(self) -> None: ...

    def state(self) -> str:
        return "ok"

    async def history(self, stream: str, epoch: str, offset: int) -> list[Envelope] | None:
        head, self.delivered = self.steps[min(self.reads, len(self.steps) - 1)]
        self.reads += 1
        return [_env(o) for o in range(offset + 1, head + 1)]

    def position(self, stream: str) -> tuple[str, int] | None:
        return None if self.delivered is None else ("ep", self.delivered)

    def seed(self, stream: str, epoch: str, offset: int) -> None:
        self.seeded = (stream, epoch, offset)


async def _replay(broker: LaggingBroker | MemoryBroker, since: int) -> list[Envelope] | None:
    aw = Anywire(anonymous=True, broker=broker)  # type: ignore[arg-type]
    return await aw.host._history_until_now(STREAM, "ep", since)


async def test_offsets_the_node_has_not_delivered_yet_are_left_to_live_delivery() -> None:
    broker = LaggingBroker([(9, 7)])  # published up to 9, delivered here up to 7
    got = await _replay(broker, 3)
    assert [e.data for e in got or ()] == [4, 5, 6, 7]  # 8 and 9 will arrive live


async def test_a_node_that_delivered_more_meanwhile_reads_history_again() -> None:
    broker = LaggingBroker([(5, 7), (8, 8)])
    got = await _replay(broker, 3)
    assert broker.reads == 2
    assert [e.data for e in got or ()] == [4, 5, 6, 7, 8]


async def test_an_untracked_stream_is_seeded_at_the_end_of_the_history_read() -> None:
    broker = LaggingBroker([(6, None)])
    got = await _replay(broker, 2)
    assert [e.data for e in got or ()] == [3, 4, 5, 6]
    assert broker.seeded == (STREAM, "ep", 6)  # live duplicates of 3..6 are dropped


async def test_a_node_that_keeps_racing_ahead_reports_not_recovered() -> None:
    broker = LaggingBroker([(5, 6)])  # never catches up within the bounded retries
    assert await _replay(broker, 1) is None
    assert broker.reads == 5


async def test_the_memory_broker_replays_everything_published() -> None:
    broker = MemoryBroker()
    aw = Anywire(anonymous=True, broker=broker)
    await aw.start()
    try:
        for i in range(5):
            await aw.emit("e", i, room="r")
        log_epoch = broker.position(STREAM)
        assert log_epoch is not None and log_epoch[1] == 5
        got = await aw.host._history_until_now(STREAM, log_epoch[0], 2)
        assert [e.data for e in got or ()] == [2, 3, 4]
    finally:
        await aw.stop(grace=0.1)


async def test_user_since_replays_the_user_stream_into_a_fresh_session() -> None:
    aw = Anywire(anonymous=True)
    await aw.start()
    try:
        for i in range(4):
            await aw.emit("dm", i, user="u1")
        pos = aw.broker.position("user:/:u1")
        assert pos is not None
        _, _, ticket, _ = aw.host.issue(Identity("u1"), "/", "json", None, (pos[0], 1))
        link = Link(WEBSOCKET, aw.host.codec("json"))
        await aw.host.attach(link, Connect(ticket))
        frames = [aw.host.codec("json").decode(f) for f in aw.host.outgoing(link)]
        events = [f for f in frames if f.get("t") == "event"]
        assert [f["d"] for f in events] == [1, 2, 3]
        assert [f["o"][2] for f in events] == [2, 3, 4]
        # A position history cannot serve: one $lost event instead, never a partial replay.
        _, _, ticket, _ = aw.host.issue(Identity("u1"), "/", "json", None, ("other", 1))
        link = Link(WEBSOCKET, aw.host.codec("json"))
        await aw.host.attach(link, Connect(ticket))
        frames = [aw.host.codec("json").decode(f) for f in aw.host.outgoing(link)]
        events = [f for f in frames if f.get("t") == "event"]
        assert [f["e"] for f in events] == ["$lost"]
        assert events[0]["d"] == {"stream": "user:/:u1", "epoch": "other", "from": 2, "to": None}
    finally:
        await aw.stop(grace=0.1)
