"""ClientPeer: numbering, retransmission buffer, dedupe, hello handling, rx."""

from __future__ import annotations

import pytest

from anywire.core.closecodes import CloseCode
from anywire.core.errors import LocalProtocolError, RemoteProtocolError
from anywire.core.frames import Ack, Close, Event, Hello, Join, Leave, Ping, Pong, Rx
from anywire.core.peer import ClientPeer


def seqs(frames: object) -> list[int]:
    return [f.s for f in frames]  # type: ignore[attr-defined]


def sent(peer: ClientPeer, n: int) -> list[Event]:
    return [peer.event("m", i) for i in range(n)]


def test_outgoing_frames_are_numbered_and_tracked() -> None:
    peer = ClientPeer()
    ev = peer.event("chat", {"x": 1}, ack_id=peer.next_id())
    join = peer.join("lobby", {"nick": "a"})
    leave = peer.leave("lobby")
    ack = peer.ack(9, True, "fine")
    assert ev == Event(1, "chat", {"x": 1}, id=1)
    assert join == Join(2, 2, "lobby", {"nick": "a"})
    assert leave == Leave(3, 3, "lobby")
    assert ack == Ack(4, 9, True, "fine")
    assert peer.out_seq == 4
    assert list(peer.unconfirmed) == [ev, join, leave, ack]


def test_error_ack() -> None:
    peer = ClientPeer()
    ack = peer.ack(3, False, err={"code": "no", "message": "denied"})
    assert ack.to_wire()["err"] == {"code": "no", "message": "denied"}


def test_retransmission_buffer_is_bounded() -> None:
    peer = ClientPeer(max_unconfirmed=2)
    sent(peer, 2)
    assert not peer.has_room()
    with pytest.raises(LocalProtocolError):
        peer.event("m", 3)
    assert peer.out_seq == 2  # the refused frame took no number
    peer.receive(Rx(1))
    assert peer.has_room()
    assert peer.event("m", 3).s == 3


def test_rx_confirms_cumulatively() -> None:
    peer = ClientPeer()
    sent(peer, 5)
    assert peer.receive(Rx(3)) is None
    assert seqs(peer.unconfirmed) == [4, 5]
    peer.receive(Rx(2))  # stale
    assert seqs(peer.unconfirmed) == [4, 5]
    peer.receive(Rx(5))
    assert not peer.unconfirmed


def test_first_hello_returns_frames_queued_before_connecting() -> None:
    peer = ClientPeer()
    queued = sent(peer, 2)
    assert peer.on_hello(Hello("A", False, 0, 0)) == queued
    assert peer.sid == "A"


def test_recovered_hello_trims_by_last_and_returns_the_rest() -> None:
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    frames = sent(peer, 5)
    resend = peer.on_hello(Hello("A", True, 0, 3))
    assert resend == frames[3:]
    assert seqs(peer.unconfirmed) == [4, 5]


def test_recovered_hello_keeps_the_receive_position() -> None:
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    for s in (1, 2, 3):
        peer.receive(Event(s, "n"))
    peer.on_hello(Hello("A", True, 3, 0))
    assert peer.in_last == 3
    assert peer.receive(Event(3, "n")) is None
    assert peer.receive(Event(4, "n")) is not None


def test_recovered_hello_for_another_session_is_refused() -> None:
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    with pytest.raises(RemoteProtocolError):
        peer.on_hello(Hello("B", True, 0, 0))


def test_recovered_hello_whose_last_no_frame_sent_could_explain_is_refused() -> None:
    # Found by the state-machine fuzz (issue #13): a hello claiming frames the client never
    # sent used to be taken, and the next frames (numbered at or below that last) were
    # then dropped by the server as duplicates: lost.
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    sent(peer, 3)
    assert peer.hello_problem(Hello("A", True, 0, 4)) is not None
    with pytest.raises(RemoteProtocolError):
        peer.on_hello(Hello("A", True, 0, 4))
    peer.confirm(2)  # the server confirmed 2: a hello saying 1 forgot one of them
    assert peer.hello_problem(Hello("A", True, 0, 1)) is not None
    assert peer.hello_problem(Hello("A", True, 0, 2)) is None
    assert peer.hello_problem(Hello("A", False, 0, 99)) is None  # fresh: renumbers
    assert [f.s for f in peer.on_hello(Hello("A", True, 0, 3))] == []


def test_unrecovered_hello_renumbers_unconfirmed_frames() -> None:
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    frames = sent(peer, 5)
    peer.receive(Rx(3))
    for s in range(1, 8):
        peer.receive(Event(s, "n"))
    resend = peer.on_hello(Hello("B", False, 0, 0))
    assert seqs(resend) == [1, 2]
    assert [(f.e, f.d) for f in resend] == [(f.e, f.d) for f in frames[3:]]
    assert peer.sid == "B"
    assert peer.in_last == 0 and peer.rx_sent == 0
    assert peer.event("m", 99).s == 3
    assert peer.receive(Event(1, "n")) is not None  # new session numbering from 1


def test_a_late_receipt_holds_until_a_hello_renumbers() -> None:
    """A POST's 204 may come after its transport ended (protocol 8.5, 6.7): it confirms
    its frames while their numbering holds (a resume keeps it) and means nothing once a
    fresh session renumbered them (its ``n`` names other frames then)."""
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    frames = sent(peer, 5)
    before = peer.numbering
    peer.on_hello(Hello("A", True, 0, 1))  # a resume: the same numbering
    assert peer.numbering == before
    assert peer.confirm_in(before, 3)
    assert seqs(peer.unconfirmed) == [4, 5]
    peer.on_hello(Hello("B", False, 0, 0))  # a fresh session: frames 4, 5 are now 1, 2
    assert peer.numbering != before
    assert not peer.confirm_in(before, 5)  # the old session's 5: dropped
    assert seqs(peer.unconfirmed) == [1, 2]
    assert [f.d for f in peer.unconfirmed] == [f.d for f in frames[3:]]  # type: ignore[attr-defined]
    assert peer.confirm_in(peer.numbering, 1)
    assert seqs(peer.unconfirmed) == [2]


def test_unrecovered_hello_with_the_same_sid_renumbers_too() -> None:
    """A resume the server could not serve (outbox overflow) starts a new session under the
    same sid: the new session has processed nothing, so numbering must restart or every
    later frame would be refused as a gap."""
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    sent(peer, 5)
    peer.receive(Rx(5))
    pending = sent(peer, 2)  # s = 6, 7: never reached the server
    resend = peer.on_hello(Hello("A", False, 0, 0))
    assert seqs(resend) == [1, 2]
    assert [f.d for f in resend] == [f.d for f in pending]
    assert peer.event("m", 9).s == 3


def test_renumbering_preserves_every_frame_kind() -> None:
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    sent(peer, 3)
    peer.receive(Rx(3))
    ev = peer.event("e", b"\x00", ack_id=7)
    join = peer.join("r", {"m": 1})
    leave = peer.leave("r")
    ack = peer.ack(5, False, err={"code": "x", "message": "y"})
    resend = peer.on_hello(Hello("B", False, 0, 0))
    assert resend == [
        Event(1, "e", b"\x00", id=7),
        Join(2, join.id, "r", {"m": 1}),
        Leave(3, leave.id, "r"),
        Ack(4, 5, False, err={"code": "x", "message": "y"}),
    ]
    assert (ev.s, ack.s) == (4, 7)  # the originals are immutable and untouched


def test_unrecovered_hello_takes_the_servers_receive_position() -> None:
    peer = ClientPeer()
    peer.on_hello(Hello("A", False, 0, 0))
    peer.receive(Event(1, "n"))
    peer.on_hello(Hello("B", False, 2, 0))  # two frames pushed before the hello were skipped
    assert peer.in_last == 2
    assert peer.receive(Event(3, "n")) is not None


def test_duplicates_are_dropped() -> None:
    peer = ClientPeer()
    first = Event(1, "n", "a")
    assert peer.receive(first) is first
    assert peer.receive(Event(1, "n", "a")) is None
    assert peer.receive(Ack(2, 1, True)) is not None
    assert peer.receive(Event(1, "n")) is None
    assert peer.receive(Ack(2, 1, True)) is None
    assert peer.in_last == 2


@pytest.mark.parametrize(("before", "sent_s"), [(0, 2), (2, 4), (2, 100)])
def test_gap_raises(before: int, sent_s: int) -> None:
    peer = ClientPeer()
    for s in range(1, before + 1):
        peer.receive(Event(s, "n"))
    with pytest.raises(RemoteProtocolError) as info:
        peer.receive(Event(sent_s, "n"))
    assert info.value.code == CloseCode.BAD_REQUEST
    assert peer.in_last == before


def test_control_frames_reach_the_application() -> None:
    peer = ClientPeer()
    assert peer.receive(Ping()) == Ping()
    assert peer.receive(Close(4000, "bye")) == Close(4000, "bye")
    assert peer.pong() == Pong()
    assert peer.in_last == 0


def test_rx_due_every_16_frames() -> None:
    peer = ClientPeer()
    for s in range(1, 16):
        peer.receive(Event(s, "n"))
        assert peer.rx_due() is None
    peer.receive(Event(16, "n"))
    assert peer.rx_due() == Rx(16)
    assert peer.rx_due() is None
    assert peer.rx_due(force=True) is None  # nothing new since


def test_rx_due_forced_when_answering_a_ping() -> None:
    peer = ClientPeer()
    assert peer.rx_due(force=True) is None  # nothing received at all
    for s in range(1, 4):
        peer.receive(Event(s, "n"))
    assert peer.rx_due() is None
    assert peer.rx_due(force=True) == Rx(3)
    assert peer.rx_due(force=True) is None


def test_duplicates_do_not_advance_rx() -> None:
    peer = ClientPeer()
    for s in range(1, 16):
        peer.receive(Event(s, "n"))
    for s in range(1, 16):
        peer.receive(Event(s, "n"))
    assert peer.rx_due() is None


def test_ack_ids_are_fresh() -> None:
    peer = ClientPeer()
    assert [peer.next_id() for _ in range(3)] == [1, 2, 3]
    assert peer.join("r").id == 4


def test_a_fresh_hello_sends_rejoins_first_and_may_rewrite_what_it_resends() -> None:
    from anywire.core.frames import Hello, Join

    peer = ClientPeer()
    peer.on_hello(Hello("s", False, 0, 0))
    peer.event("a", 1)
    peer.join("r", since=("ep", 3))
    rejoin = Join(s=0, id=99, r="lobby", since=("ep", 40))
    resent = peer.on_hello(
        Hello("s", False, 0, 0),
        first=[rejoin],
        rewrite=lambda f: Join(f.s, f.id, f.r, f.meta, ("ep", 9)) if isinstance(f, Join) else f,
    )
    assert [(f.type, f.s) for f in resent] == [("join", 1), ("event", 2), ("join", 3)]
    assert resent[0].id == 99 and resent[2].since == ("ep", 9)  # type: ignore[union-attr]
    assert peer.out_seq == 3


def test_a_join_sent_again_keeps_its_id() -> None:
    peer = ClientPeer()
    assert peer.join("r", ack_id=41).id == 41
    assert peer.join("r").id == 1
