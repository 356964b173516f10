"""Namespaces isolate handlers and broadcasts; room events carry increasing stream
offsets; emit to everyone reaches every session of the namespace. Every transport."""

from __future__ import annotations

from .conftest import Server, make_token
from .raw import RawConn


async def _event(conn: RawConn, name: str) -> dict:
    while True:
        frame = await conn.recv()
        if frame.get("t") == "event" and frame.get("e") == name:
            return dict(frame)


async def test_room_events_carry_increasing_stream_offsets(server: Server, transport: str) -> None:
    room = f"offsets-{transport}"
    conn = RawConn(server.url, transport, make_token("offsets"))
    try:
        await conn.open()
        await conn.send({"t": "join", "s": 1, "id": 1, "r": room})
        assert (await conn.recv())["ok"] is True
        for s in (2, 3, 4):
            await conn.send(
                {
                    "t": "event",
                    "s": s,
                    "e": "to_room",
                    "d": {"room": room, "event": "tick", "data": s},
                }
            )
        offsets = [(await _event(conn, "tick"))["o"] for _ in range(3)]
        streams = {o[0] for o in offsets}
        epochs = {o[1] for o in offsets}
        assert streams == {f"room:/:{room}"} and len(epochs) == 1
        assert [o[2] for o in offsets] == [offsets[0][2], offsets[0][2] + 1, offsets[0][2] + 2]
    finally:
        await conn.close()


async def test_namespaces_isolate_handlers_and_broadcasts(server: Server, transport: str) -> None:
    main = RawConn(server.url, transport, make_token("ns-main"))
    other = RawConn(server.url, transport, make_token("ns-other"))
    try:
        await main.open()
        await other.open(ns="/other")
        await other.send({"t": "event", "s": 1, "id": 1, "e": "whereami"})
        assert (await other.recv())["d"] == "/other"
        await other.send({"t": "event", "s": 2, "id": 2, "e": "echo", "d": 1})
        refused = await other.recv()
        assert refused["ok"] is False and refused["err"]["code"] == "no_handler"
        # Everyone in "/other" hears it; "/" does not.
        await other.send(
            {
                "t": "event",
                "s": 3,
                "e": "to_all",
                "d": {"event": "hear", "data": "other-only", "namespace": "/other"},
            }
        )
        assert (await _event(other, "hear"))["d"] == "other-only"
        await main.send(
            {"t": "event", "s": 1, "e": "to_all", "d": {"event": "hear", "data": "main"}}
        )
        assert (await _event(main, "hear"))["d"] == "main"
        await other.send({"t": "event", "s": 4, "id": 4, "e": "whereami"})
        nxt = await other.recv()
        assert nxt["t"] == "ack" and nxt["id"] == 4  # no "main" broadcast arrived before it
    finally:
        await main.close()
        await other.close()
