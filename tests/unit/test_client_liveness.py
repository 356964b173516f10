"""The half-open watch of the Python client: which sends need an answer, and when the
silence that follows one is fatal (clock passed in)."""

from __future__ import annotations

from anywire.clients.python.liveness import AnswerWatch, expects_answer
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
