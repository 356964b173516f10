"""The half-open watch of the Python client: which sends need an answer, and when the
silence that follows one is fatal (clock passed in)."""

from __future__ import annotations

from anywire.clients.python.liveness import AnswerWatch, IdleCuts, expects_answer
from anywire.core.frames import Ack, Event, Ping, Pong, Rx


def test_only_frames_the_server_answers_arm_the_watch() -> None:
    assert expects_answer([Event(s=1, e="x")])
    assert expects_answer([Rx(3), Ack(s=2, id=1, ok=True)])
    assert expects_answer([Ping()])
    assert not expects_answer([Pong(), Rx(3)])  # nobody answers these
    assert not expects_answer([])


def test_silence_after_the_first_unanswered_send_is_fatal() -> None:
    watch = AnswerWatch(2.0)
    assert watch.deadline() is None and not watch.expired(100.0)
    assert watch.sent(10.0)
    assert not watch.sent(11.5)  # the oldest unanswered send counts
    assert watch.deadline() == 12.0
    assert not watch.expired(11.9)
    assert watch.expired(12.0)


def test_anything_heard_disarms_the_watch() -> None:
    watch = AnswerWatch(2.0)
    watch.sent(10.0)
    watch.heard()
    assert not watch.expired(50.0)
    assert watch.sent(50.0)  # the next send starts a new wait
    assert watch.deadline() == 52.0


def test_two_consistent_idle_cuts_ask_for_a_third() -> None:
    cuts = IdleCuts()
    assert not cuts.ended(3.0, None, 20.0)  # one cut says nothing yet
    assert cuts.request_ms() is None
    assert cuts.ended(3.2, 1006, 20.0)
    assert cuts.request_ms() == 1000
    assert not cuts.ended(3.1, None, 20.0)  # the same pattern: nothing new to ask


def test_cuts_that_say_nothing_about_an_idle_timeout_are_ignored() -> None:
    cuts = IdleCuts()
    cuts.ended(3.0, None, 20.0)
    assert not cuts.ended(3.0, 4000, 20.0)  # the server closed it (a restart)
    cuts.ended(3.0, None, 20.0)
    assert not cuts.ended(None, None, 20.0)  # the client dropped it itself
    cuts.ended(20.0, None, 20.0)
    assert not cuts.ended(21.0, None, 20.0)  # no sooner than the heartbeat
    assert cuts.request_ms() is None and cuts.cuts == 2
