"""The server side of one session: sequencing, replay buffer, dedupe, heartbeats, expiry.

Rules of the state machine (the single source of truth):

* ``NEW`` -> ``ATTACHED`` when a transport connection redeems the ticket (:meth:`attach`).
* ``ATTACHED`` -> ``DETACHED`` when that connection ends (:meth:`detach`) or is declared
  dead by :meth:`poll`; the session is kept for ``resume_window`` seconds.
* ``DETACHED`` -> ``ATTACHED`` on a resume that can be served from the outbox. The
  resume window stands still while the node is overloaded (the host passes its stall
  clock, :mod:`.stall`, as ``stalled``), up to ``resume_stretch`` windows in all.
* ``ATTACHED`` -> ``ATTACHED`` when a newer connection takes over (the older is replaced).
* any -> ``CLOSED`` when the resume window passes, on a terminal close, or on :meth:`close`.

Every server-to-client ``event``/``ack`` gets the next sequence number and stays in the
outbox until the client acknowledges it cumulatively (``rx``, or a long-poll ``ack=``).
The outbox is bounded in frames (``outbox_size``) and in bytes (``outbox_bytes``, each
frame counted at its encoded :attr:`~anywire.core.codec.Outgoing.size`): what a client
that never acknowledges costs is bounded, join and ack answers included. Liveness
control frames (``ping``, ``pong``, ``rx``) are never queued: at most one of each kind
waits, however often the client asks.
Client frames carry their own sequence numbers: one at or below ``in_last`` is a duplicate
(dropped), one that skips ahead is refused (clients send strictly in order).

Stream events (they carry ``o``) are deduplicated per stream as well: the session keeps,
per stream, the last position it queued (:meth:`ServerSession.stream_position`), and a
push at or below it in the same epoch is dropped. So however a stream reaches the session
(live, replayed by a join's ``since`` or by the catch-up of a new session, twice by a
repeated request) it never gets one offset twice: catch-up is idempotent.

The object never reads a clock or schedules anything: callers pass ``now`` and ask
:meth:`next_deadline` when to call :meth:`poll` again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import islice
from operator import attrgetter
from typing import Any

from .closecodes import CloseCode
from .codec import Outgoing
from .errors import LocalProtocolError, RemoteProtocolError
from .flood import FloodError, TokenBucket
from .frames import SEQUENCED, Frame, Hello, Ping, Pong, Rx, StreamPos, in_order
from .settings import Settings
from .stall import stretch
from .streams import Lost

__all__ = ["Heartbeat", "ServerSession", "SessionAction", "SessionState"]

_NO_OUTBOX: deque[Any] = deque(maxlen=0)  # shared, never appended to (see push())
_NO_CONTROL: tuple[Sequence[Frame], None] = ((), None)  # take_output_control(): nothing
_RX_EVERY = 16  # acknowledge client frames at least every this many, so its buffer drains
_SIZE = attrgetter("size")  # an Outgoing's encoded size (take_run's byte cap)
# What a frame that was never encoded counts for in the byte budget (the host encodes
# every frame before pushing it; this only keeps the count consistent if one was not).
_UNSIZED = 64


class SessionState(Enum):
    """Lifecycle states; see the module docstring for the transitions."""

    NEW = "new"
    ATTACHED = "attached"
    DETACHED = "detached"
    CLOSED = "closed"


# Module-level names for the states the hot paths test: on Python 3.11 every
# ``SessionState.X`` is a metaclass lookup (~45 ns), paid several times per message.
_ATTACHED = SessionState.ATTACHED
_CLOSED = SessionState.CLOSED


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """How a transport keeps itself alive.

    ``ping_interval`` is None for transports whose requests are themselves the heartbeat
    (long-poll); ``dead_after`` is the silence after which the peer is declared dead.
    """

    ping_interval: float | None
    dead_after: float


@dataclass(frozen=True, slots=True)
class SessionAction:
    """Something :meth:`ServerSession.poll` asks the host to do.

    ``kind`` is ``"ping"`` or ``"flush"`` (control frames are waiting: wake the live
    connection's writer), ``"close"`` (end the live
    connection with ``code``/``reason``; the session stays resumable if the code is in the
    reconnect range) or ``"expire"`` (forget the session: rooms, presence, everything).
    """

    kind: str
    code: int = 0
    reason: str = ""


class ServerSession:
    """Transport-neutral server state of one client session."""

    __slots__ = (
        "_held",
        "_next_ack_id",
        "_open_lost",
        "_out",
        "_out_bytes",
        "_relays",
        "anonymous",
        "auth_deadline",
        "budget",
        "connection",
        "control",
        "created_at",
        "detached_at",
        "floor",
        "heartbeat",
        "in_last",
        "incarnation",
        "last_close",
        "last_ping",
        "last_seen",
        "meta",
        "namespace",
        "out_seq",
        "positions",
        "reported",
        "rx_owed_since",
        "rx_sent",
        "settings",
        "sid",
        "stall_mark",
        "state",
        "tickets",
        "user",
        "written",
    )

    def __init__(
        self,
        sid: str,
        user: str | None,
        namespace: str,
        settings: Settings,
        now: float,
        auth_deadline: float | None = None,
        meta: Any = None,
    ) -> None:
        self.sid = sid
        self.user = user
        self.namespace = namespace
        self.meta = meta
        self.settings = settings
        self.state = SessionState.NEW
        self.auth_deadline = auth_deadline
        self.out_seq = 0  # last sequence number assigned
        # The outbox holds frames only: it is contiguous and ends at out_seq, so a
        # frame's number is implied by its position (no tuple per frame per session,
        # which a large fan-out would otherwise allocate and the GC would scan). It is
        # a shared empty deque until the first push: an empty deque costs ~600 bytes
        # and many connections never get a sequenced frame.
        self._out: deque[Outgoing] = _NO_OUTBOX
        self._out_bytes = 0  # the encoded sizes of the frames in _out, summed
        self.floor = 1  # lowest sequence number that can still be replayed
        self.written = 0  # last sequence number handed to the current connection
        self.in_last = 0  # last client sequence number processed
        self.rx_sent = 0  # last in_last we told the client about
        self.rx_owed_since: float | None = None  # when unacknowledged client frames began
        # Client frames processed whose effect is still on its way off this node (a
        # call's answer to its caller's node), ascending: receipts stop below the first
        # (relaying()); None, the usual case, costs nothing.
        self._relays: list[int] | None = None
        self.control: list[Frame] = []  # unsequenced frames to send at once (pong, rx)
        self.connection: object | None = None
        self.last_close: tuple[int, str] | None = None  # why the last connection was closed
        self.anonymous = False  # no credential: the session token alone proves ownership
        # Tells this session object apart from another one under the same sid (a fresh
        # session after a lost one, a copy on another node): set by the host.
        self.incarnation = ""
        # The negotiates (ticket nonces) whose session tokens address this session object,
        # the last few: a token of an earlier session under the same sid names another
        # sequence numbering, and its late requests must not reach this one. Set by the host.
        self.tickets: list[str] = []
        self.heartbeat = Heartbeat(None, settings.ping_interval + settings.ping_timeout)
        self.last_seen = now
        self.last_ping = now
        self.detached_at: float | None = None
        self.created_at = now
        # The node's stall clock when the resume window started (detach): the window
        # is extended by the overload since (stall.py).
        self.stall_mark = 0.0
        self._next_ack_id = 0
        # Per stream, the position queued last (created at the first stream event: many
        # sessions never get one).
        self.positions: dict[str, StreamPos] | None = None
        # Per stream, the open-ended loss last announced (epoch, from): see clip_lost().
        self._open_lost: dict[str, tuple[str, int]] | None = None
        # Streams whose live events are held back while the session catches up on them
        # (hold() / release()): stream -> [holders, events].
        self._held: dict[str, list[Any]] | None = None
        # Stream positions the client reported when it negotiated this (fresh) session:
        # the first time the session consumes one of those streams it catches up from
        # there (reported_position()).
        self.reported: dict[str, tuple[str, int]] | None = None
        self.budget = TokenBucket(settings.flood_rate, settings.flood_burst, now)
        """The session's flood budget (kept across resumes): see :mod:`.flood`."""

    @property
    def outbox(self) -> list[tuple[int, Outgoing]]:
        """The unacknowledged frames with their sequence numbers (a copy)."""
        first = self.out_seq - len(self._out) + 1
        return [(first + i, out) for i, out in enumerate(self._out)]

    @property
    def outbox_bytes(self) -> int:
        """The encoded size of the unacknowledged frames (what the byte budget counts)."""
        return self._out_bytes

    # -- outbound -------------------------------------------------------------------------
    def push(self, out: Outgoing) -> int:
        """Give ``out`` the next sequence number and keep it until acknowledged; returns
        that number, or 0 if ``out`` is a stream event the session already has (its
        position is at or below the stream's last one here).

        When the outbox is full (``outbox_size`` frames or ``outbox_bytes`` bytes, ``out``
        counted at its encoded ``size``) the oldest frames are dropped and ``floor``
        rises: a later resume from before them can no longer be served (``recovered:
        false``). The newest frame always stays. Whether the connection had been given
        the dropped frames is the caller's to check (``written < floor - 1``: 4002).
        """
        if self.state is _CLOSED:
            raise LocalProtocolError("push on a closed session")
        pos = out.pos
        if pos is not None:
            stream = pos[0]
            held = self._held
            if held is not None and stream in held:
                held[stream][1].append(out)  # delivered by release(), after the catch-up
                return 0
            positions = self.positions
            if positions is None:
                positions = self.positions = {}
            else:
                last = positions.get(stream)
                # (The offsets first: an int comparison rules out the usual new event; a
                # tuple comparison, pos <= last, cost ~400 instructions per recipient.
                # last is of the same stream, so with the same epoch this is pos <= last.)
                if last is not None and pos[2] <= last[2] and last[1] == pos[1]:
                    return 0
            positions[stream] = pos
        size = out.size
        if not size:
            size = out.size = _UNSIZED  # set once, so acknowledge() subtracts the same
        # (Locals instead of repeated attribute loads: this runs once per recipient.)
        self.out_seq = seq = self.out_seq + 1
        box = self._out
        if box is _NO_OUTBOX:
            box = self._out = deque()
        box.append(out)
        self._out_bytes = total = self._out_bytes + size
        settings = self.settings
        if len(box) > settings.outbox_size or total > settings.outbox_bytes:
            self._trim()
        return seq

    def _trim(self) -> None:
        """Drop the oldest frames until the outbox is within both budgets (keeping the
        newest frame, however large)."""
        out, settings = self._out, self.settings
        while len(out) > 1 and (
            len(out) > settings.outbox_size or self._out_bytes > settings.outbox_bytes
        ):
            self._out_bytes -= out.popleft().size
        self.floor = self.out_seq - len(out) + 1

    # -- streams --------------------------------------------------------------------------
    def stream_position(self, stream: str) -> tuple[str, int] | None:
        """``(epoch, offset)`` of the last event of ``stream`` queued for this session (or
        where it started consuming the stream), None if it never did."""
        last = None if self.positions is None else self.positions.get(stream)
        return None if last is None else (last[1], last[2])

    def start_stream(self, stream: str, epoch: str, offset: int) -> tuple[str, int]:
        """The session consumes ``stream`` from ``(epoch, offset)`` on (a catch-up's
        start): events at or below it are dropped. A later position the session already
        holds in that epoch is kept. Returns the position the session continues from."""
        if self.positions is None:
            self.positions = {}
        last = self.positions.get(stream)
        if last is None or last[1] != epoch or last[2] < offset:
            self.positions[stream] = (stream, epoch, offset)
            return (epoch, offset)
        return (last[1], last[2])

    def reported_position(self, stream: str) -> tuple[str, int] | None:
        """The position the client reported in ``stream`` at negotiate, once: the first
        catch-up on the stream starts from it, later ones from the session's own."""
        if self.reported is None:
            return None
        return self.reported.pop(stream, None)

    def hold(self, stream: str) -> None:
        """Keep live events of ``stream`` aside until :meth:`release`: the session is
        catching up on it from history, and history must go first. Nested holds (two
        catch-ups at once) release when the last one does."""
        if self._held is None:
            self._held = {}
        entry = self._held.get(stream)
        if entry is None:
            self._held[stream] = [1, []]
        else:
            entry[0] += 1

    def release(self, stream: str) -> list[Outgoing]:
        """End a :meth:`hold`; returns the events held meanwhile (push them now: the
        per-stream dedupe drops those the catch-up already delivered)."""
        held = self._held
        entry = None if held is None else held.get(stream)
        if held is None or entry is None:
            return []
        entry[0] -= 1
        if entry[0] > 0:
            return []
        del held[stream]
        if not held:
            self._held = None
        return list(entry[1])

    def clip_lost(self, lost: Lost) -> Lost | None:
        """``lost`` as far as this session is concerned: None if it lies at or below the
        session's position in that stream (already delivered or already announced), else
        the part after it. A bounded loss moves the session's position past it.

        Call it just before announcing: what it returns counts as announced. An
        open-ended loss (``last`` None: everything after ``first - 1`` of that epoch)
        does not move the position, yet two parts of a node can find the same one for a
        session: the gap tracker when a stream's history restarted (its epoch vanished
        with a Redis failover), and a rejoin's catch-up finding that epoch gone. So the
        session remembers the open-ended loss it was told per stream, and a later one is
        None when it says nothing new: same epoch, starting at or after the one told,
        and the session was given nothing of that epoch past its start since
        (docs/reliability/sentinel-stall.md).
        """
        stream = lost.stream
        last = None if self.positions is None else self.positions.get(stream)
        first = lost.first
        if last is not None and last[1] == lost.epoch:
            if lost.last is not None and lost.last <= last[2]:
                return None
            first = max(first, last[2] + 1)
        if lost.last is not None:
            if self.positions is None:
                self.positions = {}
            self.positions[stream] = (stream, lost.epoch, lost.last)
        else:
            told = self._open_lost
            before = None if told is None else told.get(stream)
            if (
                before is not None
                and before[0] == lost.epoch
                and before[1] <= first
                and (last is None or last[1] != lost.epoch or last[2] < before[1])
            ):
                return None
            if told is None:
                told = self._open_lost = {}
            told[stream] = (lost.epoch, first)
        if first == lost.first:
            return lost
        return Lost(stream, lost.epoch, first, lost.last)

    def take_pending(
        self, limit: int | None = None, max_bytes: int | None = None
    ) -> list[tuple[int, Outgoing]]:
        """Frames the current connection has not been given yet, in order, with their
        sequence numbers: :meth:`take_run`'s frames, numbered."""
        first = self.written + 1
        return [(first + i, item) for i, item in enumerate(self.take_run(limit, max_bytes))]

    def take_run(self, limit: int | None = None, max_bytes: int | None = None) -> list[Outgoing]:
        """Frames the current connection has not been given yet, in order (at most
        ``limit`` of them, and no more than ``max_bytes`` of encoded size once the first
        is taken: one message, and what a stalled socket buffers of it, stays bounded).
        The first is numbered ``written + 1`` as it was before the call, the others follow
        (no tuple per frame: a writer numbers them as it frames them).

        Nothing while the outbox overflowed past frames this connection was never given
        (``written < floor - 1``): the frames after the gap would reach the client as the
        successors of what it has. The host closes such a connection with 4002."""
        written = self.written
        if written >= self.out_seq or self.state is not _ATTACHED:
            return []
        out = self._out
        size = len(out)
        if not size:
            self.written = self.out_seq
            return []
        # The outbox is contiguous and ends at out_seq: seq n sits at index n - first.
        start = written + size - self.out_seq  # (written + 1 - first)
        if start < 0:  # a gap: see above
            return []
        count = size - start
        if limit is not None and limit < count:
            taken = list(islice(out, start, start + limit))
        elif count == 1:  # (the usual runs, without islice)
            taken = [out[-1]]
        elif count == 2:
            taken = [out[-2], out[-1]]
        else:  # the tail, taken from its end
            taken = list(islice(reversed(out), count))
            taken.reverse()
        # (The whole outbox within the cap, the usual case: the run is too, no sum.)
        if (
            max_bytes is not None
            and len(taken) > 1
            and self._out_bytes > max_bytes
            and sum(map(_SIZE, taken)) > max_bytes
        ):
            total = 0
            for n, item in enumerate(taken):
                total += item.size
                if total > max_bytes and n:
                    del taken[n:]
                    break
        self.written = written + len(taken)
        return taken

    def take_next(self) -> Outgoing | None:
        """:meth:`take_pending` for its usual case, without the list: the one frame the
        connection has not been given when it is the last one pushed (a fan-out to an
        idle connection), its number then ``written``. None in every other case (nothing
        or several pending, a gap, not attached): ask :meth:`take_pending`."""
        if self.written + 1 != self.out_seq or self.state is not _ATTACHED:
            return None
        out = self._out
        if not out:
            return None
        self.written = self.out_seq
        return out[-1]

    def rewind(self, last: int) -> None:
        """The client reports having everything up to ``last`` (a long-poll ``ack``): forget
        those frames and hand everything after them to the next request again, so a lost
        response loses nothing."""
        self.acknowledge(last)
        # Never back past what is already acknowledged (a late poll with an older ack):
        # those frames are gone, there is nothing to resend from there.
        self.written = max(min(self.written, last), self.floor - 1)

    def touch(self, now: float) -> None:
        """The peer showed signs of life without sending a frame (a long-poll request)."""
        self.last_seen = now

    def take_control(self) -> list[Frame]:
        """Unsequenced frames (pong, rx) to send now; clears the list.

        Whenever anything is written, an ``rx`` for the client frames processed since the
        last one rides along: acknowledgements cost nothing extra then."""
        control, receipt = self.take_output_control()
        return [*control] if receipt is None else [*control, Rx(receipt)]

    def take_output_control(self) -> tuple[Sequence[Frame], int | None]:
        """:meth:`take_control` for writers: the frames queued so far, and the receipt
        that rides along as a number (or None), so the usual write (an ack and its
        receipt) builds no frame object for it. The receipt goes after the frames."""
        receipt = None
        upto = self.in_last if self._relays is None else self._relays[0] - 1
        if upto > self.rx_sent:
            receipt = self.rx_sent = upto
            self.rx_owed_since = None
        control = self.control
        if control:
            self.control = []
            return control, receipt
        return _NO_CONTROL if receipt is None else ((), receipt)

    def has_output(self) -> bool:
        """Whether the live connection has something to write now: control frames, frames
        it was not given yet, or an ``rx`` owed often enough to go on its own."""
        # (rx_due() inlined: a writer asks this after every write)
        upto = self.in_last if self._relays is None else self._relays[0] - 1
        return bool(self.control) or self.written < self.out_seq or upto - self.rx_sent >= _RX_EVERY

    def rx_due(self) -> bool:
        """Whether enough client frames went unacknowledged to write an ``rx`` on its own
        (so a client that only sends still drains its buffer)."""
        return self.receipt_upto() - self.rx_sent >= _RX_EVERY

    def receipt_upto(self) -> int:
        """The last client frame a receipt (``rx``, ``hello.last``, a long-poll answer)
        may cover: every frame processed, short of one whose effect is still being
        relayed (:meth:`relaying`)."""
        return self.in_last if self._relays is None else self._relays[0] - 1

    def relaying(self, seq: int) -> None:
        """Client frame ``seq`` was processed but what it caused is still on its way off
        this node (a call's answer travelling to its caller's node): until
        :meth:`relayed`, no receipt covers it. A receipt is the client's licence to
        forget the frame; given before the relay has left, a crash of this node in
        between would lose the answer with nobody left to send it again."""
        relays = self._relays
        if relays is None:
            self._relays = [seq]
        else:
            relays.append(seq)
            relays.sort()

    def relayed(self, seq: int, now: float) -> None:
        """The relay of client frame ``seq`` has left (or given up): receipts may cover
        it again; the receipt held back meanwhile is owed from ``now``."""
        relays = self._relays
        if relays is None or seq not in relays:
            return
        relays.remove(seq)
        if not relays:
            self._relays = None
        if self.receipt_upto() > self.rx_sent and self.rx_owed_since is None:
            self.rx_owed_since = now

    def skip(self, seq: int) -> bool:
        """Count an invalid client frame numbered ``seq`` as consumed, so the frames after
        it are not refused as a gap. Returns False if it was not the next one."""
        if seq != self.in_last + 1:
            return False
        self.in_last = seq
        return True

    def next_ack_id(self) -> int:
        """A fresh id for a server-initiated event that expects an ack."""
        self._next_ack_id += 1
        return self._next_ack_id

    # -- inbound --------------------------------------------------------------------------
    def receive(self, frame: Frame, now: float) -> Frame | None:
        """Account for one client frame. Returns it if the application must handle it
        (event, ack, join, leave), None if the session consumed it or it was a duplicate.

        Raises :class:`RemoteProtocolError` for out-of-order sequence numbers and frames
        that are only valid as the first frame. The caller charges the flood budget
        (:meth:`charge`) for the whole message first.
        """
        self.last_seen = now
        t = frame.type
        if t in SEQUENCED:
            s: int = frame.s  # type: ignore[union-attr]
            if s != self.in_last + 1 and not in_order(self.in_last, frame, "client"):
                return None  # a duplicate (in_order raises for a gap)
            self.in_last = s
            if self.rx_owed_since is None:
                self.rx_owed_since = now
            return frame
        if t == "rx":
            self.acknowledge(frame.n)  # type: ignore[union-attr]
        elif t == "ping":
            self._control_once(Pong())  # a client pinging without reading queues nothing
        elif t == "close":
            return frame  # the host ends the session
        elif t == "pong":
            pass
        elif t == "auth":
            return frame  # the host checks the fresh credential (server/refresh.py)
        else:
            raise RemoteProtocolError(f"{t!r} frame not allowed here")
        return None

    def acknowledge(self, n: int) -> None:
        """The client has everything up to ``n``: forget those frames."""
        if n > self.out_seq:
            raise RemoteProtocolError(f"ack {n} is ahead of the last frame sent {self.out_seq}")
        out = self._out
        size = len(out)
        drop = n - (self.out_seq - size)  # at most size, as n <= out_seq
        if drop > 0:
            # (Summed and dropped in C, not frame by frame: every delivered frame goes
            # this way once. Most of the outbox goes at once: the rest is copied, and
            # _out_bytes, the sum of the sizes in the outbox, is the smaller rest's sum.)
            if drop * 2 >= size:
                rest = self._out = deque(islice(out, drop, None))
                self._out_bytes = sum(map(_SIZE, rest)) if rest else 0
            else:
                self._out_bytes -= sum(map(_SIZE, islice(out, drop)))
                for _ in range(drop):
                    out.popleft()
        if n >= self.floor:  # (not max(): a builtin's call is ~700 instructions)
            self.floor = n + 1
        if self.written < n:
            # Acknowledged before this connection was given them (a poll's ack= from a
            # client that got them elsewhere, or a hostile one): they are gone, so they
            # are not pending either. (Left behind, the host's slow-consumer check would
            # take the gap for an overflow at the next push.)
            self.written = n

    def charge(self, now: float, cost: int = 1, what: str = "frames") -> None:
        """Spend ``cost`` flood tokens (a message: one per frame, at least one); raises
        :class:`~.flood.FloodError` (4008) when the budget cannot pay (the refusal is
        charged too: see :meth:`.flood.TokenBucket.take`)."""
        if not self.budget.take(now, cost):
            raise FloodError(f"flood: too many {what}", self.budget.wait(now, cost))

    def _queue_rx(self) -> bool:
        """Queue the ``rx`` owed; False if a relay holds all of it back (relayed() owes
        it again)."""
        upto = self.receipt_upto()
        self.rx_owed_since = None
        if upto <= self.rx_sent:
            return False
        self.rx_sent = upto
        # One rx waits at most: a newer one says everything an older one did.
        self.control = [f for f in self.control if type(f) is not Rx]
        self.control.append(Rx(upto))
        return True

    def _control_once(self, frame: Frame) -> None:
        """Queue a liveness frame unless one of its kind is already waiting: ``ping``
        and ``pong`` say nothing a second copy would add, and a peer that does not read
        must not make them pile up."""
        kind = type(frame)
        if not any(type(f) is kind for f in self.control):
            self.control.append(frame)

    # -- connection lifecycle ---------------------------------------------------------------
    def can_resume(self, last: int) -> bool:
        """Whether every frame after ``last`` is still in the outbox."""
        return self.state is not SessionState.CLOSED and self.floor - 1 <= last <= self.out_seq

    def attach(
        self, connection: object, now: float, heartbeat: Heartbeat, last: int | None
    ) -> Hello:
        """Bind a new transport connection; ``last`` is the client's resume point or None
        for a brand-new connection. Returns the hello to send before any pending frame.

        A resume that cannot be served must be turned into a fresh session by the caller
        (check :meth:`can_resume` first).
        """
        if self.state is SessionState.CLOSED:
            raise LocalProtocolError("attach to a closed session")
        recovered = False
        if last is not None:
            if not self.can_resume(last):
                raise LocalProtocolError("resume point not in outbox; check can_resume()")
            self.acknowledge(last)
            self.written = last
            recovered = True
        elif self.state is not SessionState.NEW:
            raise LocalProtocolError("a returning connection must resume")
        # A new session's client has seen nothing: frames pushed before the hello (by a
        # connect hook, say) are still pending and follow it.
        self.connection = connection
        self.state = SessionState.ATTACHED
        self.heartbeat = heartbeat
        self.last_seen = now
        self.last_ping = now
        self.detached_at = None
        self.rx_sent = self.receipt_upto()
        self.rx_owed_since = None
        return Hello(sid=self.sid, recovered=recovered, seq=self.written, last=self.rx_sent)

    def detach(self, connection: object, now: float, stalled: float = 0.0) -> bool:
        """The given connection ended. Returns False if it was not the live one (already
        replaced), in which case nothing changes. ``stalled``: the node's stall clock
        now (:class:`~anywire.core.stall.StallClock`), where the resume window starts."""
        if connection is not self.connection or self.state is not SessionState.ATTACHED:
            return False
        self.connection = None
        self.state = SessionState.DETACHED
        self.detached_at = now
        self.stall_mark = stalled
        # Frames written to the dead connection may be lost: resend from the ack point.
        self.written = self.floor - 1 if self._out else self.out_seq
        return True

    def close(self) -> None:
        """Forget everything; the session can no longer be resumed."""
        self.state = SessionState.CLOSED
        self.connection = None
        self._out = _NO_OUTBOX
        self._out_bytes = 0
        self.control.clear()
        self._held = None

    # -- timers ---------------------------------------------------------------------------
    def expires_at(self, stalled: float = 0.0) -> float:
        """When a session that is not attached expires, the node's stall clock reading
        ``stalled`` now: ``resume_window`` after it was detached (or created), plus the
        node's overload since, at most ``resume_stretch`` windows in all. While the node
        is still overloaded this moves later as the clock runs: poll again then."""
        settings = self.settings
        since = self.detached_at if self.detached_at is not None else self.created_at
        window = settings.resume_window
        return since + window + stretch(stalled, self.stall_mark, window, settings.resume_stretch)

    def next_deadline(self, stalled: float = 0.0) -> float | None:
        """When :meth:`poll` should next be called, or None if never (``stalled``: the
        node's stall clock now, see :meth:`expires_at`)."""
        # The host's timer sweep calls this for every attached session 4 times a second:
        # module constants for the states (``SessionState.X`` goes through the enum
        # metaclass's __getattr__ hook on 3.11, ~850 instructions) and comparisons instead
        # of a list and min() (docs/perf/cpu.md: the sweep was 1% of a core for 1,000
        # idle sessions).
        state = self.state
        if state is not _ATTACHED:
            if state is _CLOSED:
                return None
            return self.expires_at(stalled)
        heartbeat = self.heartbeat
        deadline = self.last_seen + heartbeat.dead_after
        if heartbeat.ping_interval is not None:
            ping = self.last_ping + heartbeat.ping_interval
            if ping < deadline:
                deadline = ping
        auth = self.auth_deadline
        if auth is not None and auth < deadline:
            deadline = auth
        owed = self.rx_owed_since
        if owed is not None:
            owed += self.settings.ack_delay
            if owed < deadline:
                deadline = owed
        return deadline

    def poll(self, now: float, stalled: float = 0.0) -> list[SessionAction]:
        """Advance time to ``now`` and return what the host must do (``stalled``: the
        node's stall clock at ``now``, see :meth:`expires_at`)."""
        if self.state is SessionState.CLOSED:
            return []
        if self.state is not SessionState.ATTACHED:
            if now >= self.expires_at(stalled):
                return [SessionAction("expire")]
            return []
        if self.auth_deadline is not None and now >= self.auth_deadline:
            return [SessionAction("close", CloseCode.TOKEN_EXPIRED, "token expired")]
        if now >= self.last_seen + self.heartbeat.dead_after:
            if self.heartbeat.ping_interval is None:
                return [SessionAction("close", CloseCode.POLL_TIMEOUT, "no poll from client")]
            return [SessionAction("close", CloseCode.PING_TIMEOUT, "no heartbeat from client")]
        owed = self.rx_owed_since
        # Nothing carried the acknowledgement for ack_delay: send it on its own, so
        # the client's retransmission buffer drains even when the server is quiet.
        if owed is not None and now >= owed + self.settings.ack_delay and self._queue_rx():
            return [SessionAction("flush")]
        interval = self.heartbeat.ping_interval
        if interval is not None and now >= self.last_ping + interval:
            self.last_ping = now
            self._control_once(Ping())  # an owed rx joins it in take_control()
            return [SessionAction("ping")]
        return []
