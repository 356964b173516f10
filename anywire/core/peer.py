"""The client side of a session: sequencing, retransmission, dedupe and acknowledgement.

Shared by every client (the JavaScript client mirrors it). Rules:

* Each sequenced frame the client sends gets the next ``out_seq`` and stays in
  ``unconfirmed`` until the server's ``rx`` (or ``hello.last``) covers it; after a resume,
  :meth:`on_hello` returns the frames to send again, in order.
* Each sequenced frame received is delivered once: at or below ``in_last`` it is a
  duplicate; a frame that skips ahead means frames were lost, and the client must
  reconnect and resume (``receive`` raises).
* The client acknowledges cumulatively with ``rx`` by the rule the server advertised
  (:mod:`.receipts`: a drawn count of frames, bytes or time; every 16 frames with an
  older server) and whenever it answers a ping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .errors import LocalProtocolError, RemoteProtocolError
from .frames import SEQUENCED, Ack, Event, Frame, Hello, Join, Leave, Pong, Rx, in_order
from .receipts import LEGACY, Receipts, RxRule

__all__ = ["ClientPeer"]

_F = TypeVar("_F", Event, Ack, Join, Leave)


class ClientPeer:
    """Transport-neutral client state of one session (survives reconnects)."""

    def __init__(
        self,
        max_unconfirmed: int = 1000,
        rx_rule: RxRule = LEGACY,
        draw: Callable[[], float] | None = None,
    ) -> None:
        """``rx_rule``: the receipt rule until :meth:`set_rx_rule` gives the server's;
        ``draw``: where the rule's random thresholds come from (floats in [0, 1))."""
        self.sid: str | None = None
        self.out_seq = 0
        self.unconfirmed: deque[Frame] = deque()
        self.max_unconfirmed = max_unconfirmed
        self.in_last = 0
        self.rx_sent = 0
        self.receipts = Receipts(rx_rule, draw)
        """When the next ``rx`` falls due (see :mod:`.receipts`)."""
        self.numbering = 0
        """Counts the hellos that renumbered the outgoing frames (``recovered: false``).
        A receipt that comes late (a POST answered after its transport ended) speaks of
        the numbering of its time: apply it only while this has not changed."""
        self._next_id = 0

    # -- outbound -------------------------------------------------------------------------
    def next_id(self) -> int:
        """A fresh id for an event that expects an ack (or a join/leave)."""
        self._next_id += 1
        return self._next_id

    def has_room(self) -> bool:
        """Whether another frame fits in the retransmission buffer."""
        return len(self.unconfirmed) < self.max_unconfirmed

    def event(self, name: str, data: Any, ack_id: int | None = None) -> Event:
        """Build and track an event frame."""
        return self._track(Event(s=self.out_seq + 1, e=name, d=data, id=ack_id))

    def ack(
        self, ack_id: int, ok: bool, data: Any = None, err: dict[str, str] | None = None
    ) -> Ack:
        """Build and track the reply to a server event that asked for one."""
        return self._track(Ack(s=self.out_seq + 1, id=ack_id, ok=ok, d=data, err=err))

    def join(
        self,
        room: str,
        meta: Any = None,
        since: tuple[str, int] | None = None,
        ack_id: int | None = None,
    ) -> Join:
        """Build and track a join request (``since``: replay the room from there;
        ``ack_id``: an id already given to this request, when it is sent again)."""
        ack_id = self.next_id() if ack_id is None else ack_id
        return self._track(Join(s=self.out_seq + 1, id=ack_id, r=room, meta=meta, since=since))

    def leave(self, room: str) -> Leave:
        """Build and track a leave request."""
        return self._track(Leave(s=self.out_seq + 1, id=self.next_id(), r=room))

    def _track(self, frame: _F) -> _F:
        if not self.has_room():
            raise LocalProtocolError("retransmission buffer full")
        self.out_seq += 1
        self.unconfirmed.append(frame)
        return frame

    def set_rx_rule(self, rule: RxRule) -> None:
        """Follow ``rule`` (the negotiate answer's ``rx``) from now on."""
        self.receipts.start(rule)

    def received_bytes(self, size: int) -> None:
        """A message of ``size`` bytes arrived (the receipt rule's byte limit)."""
        self.receipts.received(size)

    def rx_due(self, force: bool = False, now: float | None = None) -> Rx | None:
        """An ``rx`` to send now, if the receipt rule calls for one (or, with ``force``,
        if any frame is unacknowledged). ``now`` (seconds, any monotonic clock) applies
        the rule's time limit; call this after each message received and again at
        :meth:`rx_deadline`."""
        owed = self.in_last - self.rx_sent
        if owed > 0 and (force or self.receipts.due(owed, now)):
            self.rx_sent = self.in_last
            self.receipts.start()
            return Rx(self.in_last)
        return None

    def rx_deadline(self) -> float | None:
        """When the receipt rule's time limit falls due (None: nothing to wait for)."""
        return self.receipts.deadline()

    # -- inbound --------------------------------------------------------------------------
    def on_hello(
        self,
        hello: Hello,
        first: Sequence[Frame] = (),
        rewrite: Callable[[Frame], Frame] | None = None,
    ) -> list[Frame]:
        """Apply the server's hello; returns unconfirmed frames to send again, in order.

        A hello with ``recovered: false`` starts a fresh session: the receive position is
        reset to ``hello.seq`` and frames the old session never processed are still resent
        (the application asked for them to be delivered). For such a hello only, ``first``
        are frames to send ahead of them (rejoins: the client was in those rooms when it
        sent the rest; their ``s`` is assigned here) and ``rewrite`` may replace each
        resent frame (a join's ``since`` brought up to date).
        """
        if hello.recovered:
            problem = self.hello_problem(hello)
            if problem is not None:
                raise RemoteProtocolError(problem)
        else:
            self.in_last = hello.seq
            self.rx_sent = hello.seq
            self.receipts.start()
            # The new session has processed nothing: renumber what is still unsent. This
            # holds even when the sid is unchanged (a resume the server could not serve
            # starts a new session under the same sid), so the numbering always restarts.
            self._renumber(hello.last, first, rewrite)
        self.sid = hello.sid
        self.confirm(hello.last)
        return list(self.unconfirmed)

    def hello_problem(self, hello: Hello) -> str | None:
        """Why a recovered ``hello`` cannot be true of this client, or None: it resumes
        another session, or its ``last`` says the server processed frames this client
        never sent (they would be dropped as duplicates: lost) or forgot frames it had
        confirmed (they are no longer here to send again). A fresh hello always fits."""
        if not hello.recovered:
            return None
        if self.sid is not None and hello.sid != self.sid:
            return "resumed a different session"
        if hello.last > self.out_seq:
            return f"hello.last {hello.last} is beyond the last frame sent, {self.out_seq}"
        if hello.last < self.out_seq - len(self.unconfirmed):
            return f"hello.last {hello.last} is below frames already confirmed"
        return None

    def _renumber(
        self,
        base: int,
        first: Sequence[Frame] = (),
        rewrite: Callable[[Frame], Frame] | None = None,
    ) -> None:
        self.numbering += 1
        resent = list(self.unconfirmed)
        if rewrite is not None:
            resent = [rewrite(f) for f in resent]
        self.unconfirmed.clear()
        self.out_seq = base
        for f in [*first, *resent]:
            self.out_seq += 1
            self.unconfirmed.append(_with_seq(f, self.out_seq))

    def confirm(self, n: int) -> None:
        """The server processed every frame up to ``n``."""
        while self.unconfirmed and self.unconfirmed[0].s <= n:  # type: ignore[union-attr]
            self.unconfirmed.popleft()

    def confirm_in(self, numbering: int, n: int) -> bool:
        """A receipt given under ``numbering`` (:attr:`numbering` when the frames it
        covers were sent): the server processed every frame up to ``n`` then. Applied
        only if no hello has renumbered since (else ``n`` names other frames now);
        returns whether it was applied."""
        if numbering != self.numbering:
            return False
        self.confirm(n)
        return True

    def receive(self, frame: Frame) -> Frame | None:
        """Account for one server frame; returns it if the application must see it (events,
        acks, and control frames such as ping), None if it was consumed (rx) or a
        duplicate. Raises :class:`RemoteProtocolError` on a sequence gap."""
        t = frame.type
        if t in SEQUENCED:
            if not in_order(self.in_last, frame, "server"):
                return None
            self.in_last += 1
            return frame
        if t == "rx":
            self.confirm(frame.n)  # type: ignore[union-attr]
            return None
        return frame

    @staticmethod
    def pong() -> Pong:
        """The answer to a server ping."""
        return Pong()


def _with_seq(frame: Any, seq: int) -> Any:
    fields = {k: getattr(frame, k) for k in frame.__slots__}
    fields["s"] = seq
    return type(frame)(**fields)
