"""What a client's receipt lag can and cannot do to its session (protocol 6.4, 6.5).

The receipt rule's count (``rx.frames``) is a quarter of ``outbox_size`` with no further
cap. That is safe because of what these tests pin: frames a client received and has not
acknowledged yet are the oldest in the outbox, so an overflow drops them first (no slow
consumer close, no lost resume), and a resume replays from the client's own position
(``resume.last``), not from its last receipt. A receipt only frees memory.
"""

from __future__ import annotations

import random
from typing import Any

from anywire.core.codec import Outgoing
from anywire.core.session import Heartbeat, ServerSession
from anywire.core.settings import Settings

WS = Heartbeat(ping_interval=20.0, dead_after=30.0)


def attached(**overrides: Any) -> ServerSession:
    sess = ServerSession("sid", "user", "/", Settings(**overrides), 0.0)
    sess.attach(object(), 0.0, WS, None)
    return sess


def event(i: int) -> Outgoing:
    out = Outgoing("event", {"e": "n", "d": i})
    out.size = 100
    return out


def test_a_client_that_reads_but_never_acknowledges_is_not_a_slow_consumer() -> None:
    """Outbox of 8 frames (and 800 bytes), a client that acknowledges nothing and has up
    to 7 frames in flight at any time: the outbox overflows on every push, yet no frame
    the connection was not given is dropped (the 4002 condition, ``written < floor - 1``)
    and every position the client can be at stays resumable."""
    draw = random.Random(5).random
    for bounds in ({"outbox_size": 8}, {"outbox_bytes": 800}):
        sess = attached(**bounds)
        for i in range(200):
            sess.push(event(i))
            assert sess.take_run()  # the writer hands it to the connection
            assert sess.written >= sess.floor - 1, bounds
            received = max(0, sess.out_seq - int(draw() * 8))  # 0 to 7 frames in flight
            assert sess.can_resume(received), (bounds, i)
        assert sess.floor - 1 == sess.out_seq - 8  # the oldest were dropped all along


def test_frames_given_to_no_connection_are_what_a_full_outbox_cannot_lose() -> None:
    """The other side of the rule: more frames than the outbox holds, never written,
    is a slow consumer, whatever the receipts (the host closes it with 4002)."""
    sess = attached(outbox_size=8)
    for i in range(9):
        sess.push(event(i))
    assert sess.written < sess.floor - 1


def test_a_resume_replays_from_the_clients_position_not_its_last_receipt() -> None:
    """290 frames received, 10 acknowledged, the connection drops: the resume from 290
    replays 10 frames (those the client never got), not 290."""
    sess = attached()
    for i in range(300):
        sess.push(event(i))
    sess.take_run()
    sess.acknowledge(10)
    conn = sess.connection
    assert sess.detach(conn, 1.0)
    assert sess.can_resume(290)
    hello = sess.attach(object(), 2.0, WS, 290)
    assert hello.recovered and hello.seq == 290
    assert [seq for seq, _ in sess.take_pending()] == list(range(291, 301))
    assert len(sess.outbox) == 10  # the resume point acknowledged the rest


def test_the_advertised_count_is_a_quarter_of_the_outbox_without_a_cap() -> None:
    assert Settings().client_rx().frames == 250
    assert Settings(outbox_size=4000).client_rx().frames == 1000
    assert Settings(outbox_size=257).client_rx().frames == 64
    for size in (1, 2, 3, 4, 5, 7, 64, 255, 256, 1000, 10_000):
        frames = Settings(outbox_size=size).client_rx().frames
        assert frames >= 1 and (frames * 4 <= size or size < 4), size
