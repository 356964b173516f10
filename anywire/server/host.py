"""The session host: owns the sessions of this node and glues the core to asyncio.

It implements the transports' :class:`~anywire.transports.base.Host` protocol (attach,
feed, outgoing, detach), runs the one timer task that advances every session's clock,
and delivers broker envelopes to local sessions (encoding each broadcast once per codec).
What clients send (``feed``, ``answer``, the dispatch to handlers, ``reply``) is
:mod:`.inbound`'s, a base class.

Its helpers each own one job: :mod:`.issuer` (session ids, tokens, tickets),
:mod:`.joins` (rooms), :mod:`.calls` (server-to-client calls), :mod:`.catchup` (replay
from stream history), :mod:`.outgoing` (the frames it sends), :mod:`.budget` (the flood
budget, invalid frames), :mod:`.delivery` (events to sessions, frames to writers),
:mod:`.tracking` (what the observers are told).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..core.auth import Identity
from ..core.closecodes import CloseCode, should_reconnect
from ..core.codec import Codec, Outgoing
from ..core.errors import AuthError, ProtocolError, RemoteProtocolError
from ..core.flood import RESUME_COST
from ..core.frames import Connect, Resume, StreamPos
from ..core.rooms import Member, Rooms
from ..core.session import ServerSession, SessionState
from ..core.settings import Settings
from ..core.streams import Lost, own_streams, room_stream, session_stream
from ..transports.base import Link, Scope, short_reason
from . import heartbeats
from .broker import Broker, Envelope
from .calls import Calls
from .catchup import begin, patient_catch_up
from .codecs import make_codecs
from .delivery import Delivery
from .errors import Reject
from .inbound import Inbound
from .issuer import Issuer
from .joins import Joins
from .metrics import live_counts
from .refresh import Refresher, deadline_of
from .tasks import cancel_and_wait
from .timers import Timers
from .tracking import Tracker
from .wsresume import DirectResumes

if TYPE_CHECKING:
    from .app import Anywire
    from .cluster import Cluster
    from .faults import Faults
    from .socket import Socket

__all__ = ["SessionHost"]

log = logging.getLogger("anywire")

# The states tested per message, bound once (each SessionState.X is a metaclass lookup
# on Python 3.11).
_ATTACHED = SessionState.ATTACHED
_CLOSED = SessionState.CLOSED


class SessionHost(Inbound, Delivery, DirectResumes):
    """All sessions of one node."""

    def __init__(
        self,
        app: Anywire,
        settings: Settings,
        broker: Broker,
        secret: bytes,
        node_id: str,
        tick: float = 0.25,
    ) -> None:
        self.app = app
        self.settings = settings
        self.broker = broker
        self.node_id = node_id
        self.tick = tick
        self.codecs = make_codecs(max(settings.max_frame_size, 1024) * 4, settings.max_depth)
        self.sessions: dict[str, ServerSession] = {}
        self.sockets: dict[str, Socket] = {}
        self.rooms = Rooms()
        self.users: dict[tuple[str, str], set[str]] = {}
        self.tasks: dict[str, set[asyncio.Task[Any]]] = {}
        self.issuer = Issuer(self, secret)
        self.start_budgets(settings)
        self.calls = Calls(self)
        self.joins = Joins(self)
        self.refresher = Refresher(self)
        self.track = Tracker(self)
        # Sessions ended with a terminal code, remembered for a resume window so a late
        # poll or POST learns the real reason instead of "unknown session".
        self._tombstones: dict[str, tuple[int, str, float]] = {}
        self._timer: asyncio.Task[None] | None = None
        self.timers = Timers(self)  # server/timers.py
        self._background: set[asyncio.Task[Any]] = set()
        self.cluster: Cluster | None = None
        """Set when nodes share a Redis broker: owner registry, presence, tickets."""
        self.faults: Faults | None = None
        """Deliberate faults on outgoing frames, for testing clients (server/faults.py)."""
        self._clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()
        self.closing = False
        self.counters: dict[str, int] = {
            "connections": 0,
            "errors": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the broker and the timer task."""
        self.closing = False
        # The loop's clock, bound once: asyncio.get_running_loop() costs a getpid()
        # system call per call on Python 3.11, and feed() runs for every client message.
        self._clock = asyncio.get_running_loop().time
        await self.broker.start(self.deliver)
        self._timer = asyncio.create_task(self.timers.run(), name="anywire-timers")

    async def shutdown(self, budget: float = 2.0) -> None:
        """Drain this node within ``budget`` seconds: tell every client to move (4000)
        and wait (bounded) until their connections end, end the sessions (their
        presence leaves go to the other nodes; their streams go on wherever the clients
        land), answer whatever is still forwarded elsewhere, stop timers and the broker.
        Meanwhile requests of sessions owned by other nodes are still served."""
        loop = asyncio.get_running_loop()
        end = loop.time() + budget
        self.closing = True
        # Requests being handled answer first (a quarter of the budget): their acks then
        # go out before the close, instead of the client failing them on its next session.
        while self.tasks and loop.time() < end - budget * 3 / 4:
            await asyncio.sleep(0.02)
        for sess in list(self.sessions.values()):
            link = sess.connection
            if isinstance(link, Link):
                link.close(CloseCode.SHUTDOWN, "server shutting down")
        # Half the budget for the clients to take their close (WebSocket close handshake,
        # the last SSE event, held polls answered).
        while loop.time() < end - budget / 2 and any(
            s.state is _ATTACHED for s in self.sessions.values()
        ):
            await asyncio.sleep(0.02)
        for sess in list(self.sessions.values()):
            # Not for good: the clients move to other nodes (or come back), and the
            # sessions' streams go on there.
            self._expire(sess, run_hooks=True, end="moved")
        timer, self._timer = self._timer, None
        await cancel_and_wait(timer)
        if self._background:  # disconnect hooks
            await asyncio.wait(self._background, timeout=max(0.05, (end - loop.time()) / 3))
        if self.cluster is not None:
            self.cluster.broker.abort_requests("server shutting down")
            await self.cluster.drain(max(0.05, (end - loop.time()) / 2))  # presence, owners
        await self.broker.stop()

    # -- Host protocol (transports) -----------------------------------------------------------
    def codec(self, name: str) -> Codec:
        try:
            return self.codecs[name]
        except KeyError:
            raise RemoteProtocolError(f"unknown codec {name!r}") from None

    def check_origin(self, scope: Scope) -> bool:
        return self.app.origin_allowed(scope)

    def cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        return self.app.cors_headers(scope)

    def ticket_codec(self, ticket: str) -> str:
        return self.issuer.codec_of(ticket)

    async def attach(
        self, link: Link, first: Connect | Resume, expires_in: int | None = None
    ) -> None:
        if self.closing:
            raise ProtocolError("server shutting down", CloseCode.SHUTDOWN)
        redeemed = await self.issuer.redeem(first.ticket)
        if self.closing:
            # The drain began while the ticket was redeemed (Redis round trip): its close
            # pass has already run, so this connection would never be told to move.
            raise ProtocolError("server shutting down", CloseCode.SHUTDOWN)
        identity, sid = redeemed.identity, redeemed.sid
        now = asyncio.get_running_loop().time()
        auth_deadline = deadline_of(identity, now)
        heartbeat = heartbeats.apply(self.settings, link, redeemed.ping_interval)
        sess = self.sessions.get(sid)
        last = first.last if isinstance(first, Resume) else None
        if (
            sess is not None
            and last is not None
            and redeemed.resumes == sess.incarnation
            and sess.can_resume(last)
        ):
            # Only the copy negotiate found resumable: another copy under this sid here
            # (one the client left while Redis was down) has other frame numbers, and a
            # resume of it would replay what the client already has.
            sess.charge(now, RESUME_COST, "resumes")  # no fresh connection for a flooder
            old, resumed = sess.connection, True
            sess.auth_deadline = auth_deadline
            if (socket := self.sockets.get(sid)) is not None:
                socket.claims = identity.claims  # the fresh credential's, as a refresh does
            # The token the client presented stays known to this copy (a WebSocket
            # resume without negotiate presents the same token again and again).
            kept = [n for n in sess.tickets[-3:] if n != redeemed.presented]
            presented = [redeemed.presented] if redeemed.presented else []
            sess.tickets = [*kept, *presented, redeemed.nonce]
            hello = sess.attach(link, now, heartbeat, last)
            if isinstance(old, Link) and old is not link:
                old.close(CloseCode.TRANSPORT_REPLACED, "replaced by a newer connection")
        else:
            old, resumed = None, False
            sess, starts = await self._fresh(redeemed, auth_deadline, now)
            hello = sess.attach(link, now, heartbeat, None)
            hello.streams = starts
        self.track.attached(link, sess, old, last is not None, resumed)
        link.sid = sid
        if self.cluster is not None:
            # Registered before the hello: once the client knows its session, every node
            # can find the owner (calls, forwarded requests).
            await self.cluster.attached(sid)
        self.counters["connections"] += 1
        hello.expires_in = expires_in
        link.push(link.codec.encode(hello.to_wire()))
        if self.closing:  # the drain began during the owner record's write
            link.close(CloseCode.SHUTDOWN, "server shutting down")

    async def _fresh(
        self, redeemed: Any, auth_deadline: float | None, now: float
    ) -> tuple[ServerSession, tuple[StreamPos, ...]]:
        """Start a fresh session for a redeemed ticket: it replaces any session with that
        sid here, catches up on the streams it receives without joining (its user's, its
        own, its namespace's) from the positions the client reported, and runs the
        connect hooks. Returns it with the position of each of those streams."""
        identity: Identity = redeemed.identity
        sid, namespace = redeemed.sid, redeemed.namespace
        old = self.sessions.get(sid)
        if old is not None:
            # Replaced by a fresh session under the same sid: its stream goes on.
            self._expire(old, run_hooks=True, end="moved")
        self.issuer.gate.opened(sid, redeemed.nonce, identity.user)  # may refuse (4000)
        sess = ServerSession(sid, identity.user, namespace, self.settings, now, auth_deadline)
        sess.anonymous = identity.claims.get("anonymous") is True
        self.inherit_debt(sess, now)  # a fresh session is no way out of a flood
        sess.incarnation = secrets.token_hex(6)
        sess.reported = dict(redeemed.since)
        sess.tickets = [redeemed.nonce]
        socket = self.app.make_socket(self, sess, identity)
        self.sessions[sid] = sess
        self.sockets[sid] = socket
        if identity.user is not None:
            self.users.setdefault((namespace, identity.user), set()).add(sid)
        streams = own_streams(namespace, sid, identity.user)
        since = [sess.reported_position(s) for s in streams]
        for stream in streams:
            sess.hold(stream)
        starts: list[StreamPos] = []
        fresh = [s for s, p in zip(streams, since, strict=True) if p is None]
        try:
            # Streams the client holds no position in (a first connection): where they
            # start now, read once (the client waits for its hello).
            # None: history unreachable (Redis down), read once (no patience).
            plans = await asyncio.gather(
                *(patient_catch_up(self.broker, s, None, 0.0, sid) for s in fresh)
            )
        except BaseException:
            for stream in streams:
                sess.release(stream)
            raise
        for stream, plan in zip(fresh, plans, strict=True):
            held = sess.release(stream)
            start, _, _ = begin(sess, stream, None, plan, self.broker.position(stream))
            if start is not None:
                starts.append((stream, *start))
            for out in held:
                self.push(sess, out)
        for stream, pos in zip(streams, since, strict=True):
            if pos is not None:
                # The client's own position is where it starts (the session stands there
                # at once: a resent ack of a call finds its stream's epoch); the catch-up
                # follows the hello, patiently (a paused Redis delays it, no more).
                sess.start_stream(stream, *pos)
                starts.append((stream, *pos))
                self.spawn(self._catch_up_held(sess, stream, pos), sess.sid)
        if sess.state is SessionState.CLOSED:  # replaced by a newer connection meanwhile
            raise AuthError("session replaced", CloseCode.SESSION_UNKNOWN)
        for stream, (epoch, offset) in list((sess.reported or {}).items()):
            if stream.startswith("sess:"):
                # The client's old session stream, which this session does not continue
                # (its sid could not be kept): what it missed there is unknown.
                del sess.reported[stream]
                self.track.lost(sess, Lost(stream, epoch, offset + 1, None))
        try:
            await self.app.run_connect_hooks(socket)
        except Reject as exc:
            self._expire(sess, run_hooks=False)
            raise ProtocolError(exc.message, CloseCode.FORBIDDEN) from exc
        return sess, tuple(starts)

    def resolve(self, token: str) -> str:
        sid, fields = self.issuer.session_of(token)
        sess = self._session(sid)
        nonce = fields.get("n")
        if nonce is not None and sess.tickets and nonce not in sess.tickets:
            # A late request of an earlier session under this sid (its client has moved
            # on to this one, or is about to): its frames and acks are numbered for
            # that session. The client negotiates again if it still uses that token.
            raise AuthError("session token of an earlier session", CloseCode.SESSION_UNKNOWN)
        return sess.sid

    def _session(self, sid: str) -> ServerSession:
        """The live session ``sid``; raises with the code it ended with if it was closed
        for good lately, else 4007 SESSION_UNKNOWN."""
        sess = self.sessions.get(sid)
        if sess is not None:
            return sess
        tomb = self._tombstones.get(sid)
        if tomb is not None:
            raise ProtocolError(tomb[1], tomb[0])
        raise AuthError("session unknown or expired", CloseCode.SESSION_UNKNOWN)


    def poll_started(self, sid: str, ack: int | None) -> Link:
        sess = self._session(sid)
        self.refresher.guard(sess, self._clock())
        link = sess.connection
        if not isinstance(link, Link) or link.info.name != "longpoll":
            code, reason = sess.last_close or (CloseCode.POLL_TIMEOUT, "not polling: resume")
            raise ProtocolError(reason, code)
        now = self._clock()
        sess.touch(now)  # alive, even if refused: a flood is not a dead connection
        self.spend(sess, now, 1, "polls")
        if ack is not None:
            sess.rewind(ack)
        return link

    def detach(self, link: Link) -> None:
        self.track.ended(link)
        sess = self.sessions.get(link.sid) if link.sid is not None else None
        if sess is None:
            return
        now = asyncio.get_running_loop().time()
        if sess.detach(link, now, self.stalled(now)):
            self.timers.detached(sess)
            closing = link.closing
            if closing is not None and not should_reconnect(closing[0]):
                self._bury(sess, *closing)

    # -- sessions -------------------------------------------------------------------------
    def close_session(self, sess: ServerSession, code: int, reason: str) -> None:
        """End the live connection with ``code``; a terminal code also ends the session."""
        link = sess.connection
        sess.last_close = (code, reason)
        if isinstance(link, Link):
            link.close(code, reason)
            if link.info.name == "longpoll":
                # No request may be held to carry the close: the next poll learns it (410).
                now = asyncio.get_running_loop().time()
                if sess.detach(link, now, self.stalled(now)):
                    self.timers.detached(sess)
                self.track.ended(link)
        if not should_reconnect(code):
            self._bury(sess, code, reason)

    def end_session(self, sess: ServerSession, reason: str) -> None:
        """End ``sess`` now (its client moved to a session on another node, where its
        stream and calls go on)."""
        link = sess.connection
        if isinstance(link, Link):
            link.close(CloseCode.TRANSPORT_REPLACED, reason)
        self._expire(sess, run_hooks=True, end="moved")

    def _bury(self, sess: ServerSession, code: int, reason: str) -> None:
        """End the session for good, remembering why for late requests."""
        deadline = asyncio.get_running_loop().time() + self.settings.resume_window
        self._tombstones[sess.sid] = (code, short_reason(reason), deadline)
        self._expire(sess, run_hooks=True)

    def _expire(self, sess: ServerSession, run_hooks: bool, end: str = "closed") -> None:
        """Forget ``sess`` here. ``end`` says how it ended:

        * ``moved``: it goes on elsewhere (another node, a fresh session under the same
          sid): its stream, owner record and pending calls stay for its next copy;
        * ``expired``: its resume window passed: its calls fail and its presence goes,
          but its stream stays (a client returning with its token later keeps the sid
          and catches up on it; the stream expires with the broker's stream TTL);
        * ``closed``: ended for good by a terminal close: its stream goes too.
        """
        if self.sessions.get(sess.sid) is not sess:
            return
        del self.sessions[sess.sid]
        self.issuer.gate.counts.closed(sess.sid)
        self.broker.forget(sess.sid)  # its rooms' and its own streams (interest routing)
        socket = self.sockets.pop(sess.sid, None)
        for_good = end != "moved"
        if self.cluster is not None:
            self.cluster.ended(sess.sid, sess.namespace, end)
        elif end == "closed":
            self.broker.drop(session_stream(sess.namespace, sess.sid))
        self.calls.ended(sess.sid, for_good)
        # A session that goes on elsewhere leaves its presence to its next incarnation
        # (checked again after the resume window); one that ends, or this node's whole
        # drain, tells the others now.
        later = not for_good and not self.closing
        for _, room, member in self.rooms.leave_all(sess.sid):
            self._presence(sess, room, "$leave", member, later)
        if sess.user is not None:
            key = (sess.namespace, sess.user)
            sids = self.users.get(key)
            if sids is not None:
                sids.discard(sess.sid)
                if not sids:
                    del self.users[key]
        for task in self.tasks.pop(sess.sid, set()):
            task.cancel()
        link = sess.connection
        if isinstance(link, Link):
            # Only a session closed for good may tell its client so (a terminal code);
            # one that goes on elsewhere or later sends its client on to find it.
            if end == "closed":
                link.close(CloseCode.NORMAL, "session ended")
            elif self.closing:
                link.close(CloseCode.SHUTDOWN, "server shutting down")
            else:
                link.close(CloseCode.TRANSPORT_REPLACED, "session moved")
            self.track.ended(link)
        sess.close()
        if run_hooks and socket is not None:
            self.spawn(self.app.run_disconnect_hooks(socket))

    def stalled(self, now: float) -> float:
        """The node's stall clock at ``now`` (seconds it has spent shedding load): resume
        windows stand still while it runs (core/stall.py, server/overload.py)."""
        return self.issuer.gate.lag.stall.read(now)

    def expire(self, sess: ServerSession) -> None:
        """``sess``'s resume window passed (the timers): forget it."""
        self._expire(sess, run_hooks=True, end="expired")

    def forget_tombstones(self, now: float) -> None:
        """Forget the terminal codes remembered for longer than a resume window."""
        if self._tombstones:
            for sid in [k for k, v in self._tombstones.items() if v[2] <= now]:
                del self._tombstones[sid]

    def wake(self, sess: ServerSession) -> None:
        """Wake the writer of ``sess``'s live connection, if any."""
        self._wake(sess)

    def _wake(self, sess: ServerSession) -> None:
        link = sess.connection
        if isinstance(link, Link):
            link.wake()

    def spawn(self, coro: Awaitable[Any], sid: str | None = None) -> None:
        """Run ``coro`` as a task of session ``sid`` (cancelled when it ends) or of the
        host (awaited, bounded, at shutdown); a failure is logged."""
        task = asyncio.ensure_future(coro)
        bucket = self._background if sid is None else self.tasks.setdefault(sid, set())
        bucket.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            bucket.discard(t)
            if sid is not None and not bucket and self.tasks.get(sid) is bucket:
                del self.tasks[sid]
            if not t.cancelled() and t.exception() is not None:
                log.error("anywire task failed", exc_info=t.exception())

        task.add_done_callback(done)

    def encodable(self, out: Outgoing) -> None:
        """Encode ``out`` with every codec now (the bodies are cached for the writers), so
        a value that cannot travel fails here, in the caller, not later in a writer."""
        for codec in self.codecs.values():
            out.body(codec)

    def check_sendable(self, event: str, data: Any) -> None:
        """Raise TypeError (in the caller) if an event with ``data`` cannot travel on
        every codec: nothing is published then."""
        self.encodable(Outgoing("event", {"e": event, "d": data}))

    async def publish(self, env: Envelope) -> StreamPos:
        """Publish ``env`` through the broker (every node, this one included) and return
        its stream position. Raises TypeError for data a codec cannot carry and
        BrokerUnavailable (see ``maybe_published``)."""
        self.check_sendable(env.event, env.data)
        env.at = time.time()  # delivery latency (metrics)
        return await self.broker.publish(env)

    # -- rooms and presence ---------------------------------------------------------------
    def join(self, sess: ServerSession, room: str, meta: Any = None) -> list[dict[str, Any]]:
        """Put the session in ``room``; returns the presence list after joining."""
        member = Member(sess.sid, sess.user, meta)
        if self.rooms.join(sess.namespace, room, member) or self.cluster is not None:
            # (With Redis a join again updates the shared meta; Redis decides whether
            # anyone is told.)
            self._presence(sess, room, "$join", member)
        return [m.to_wire() for m in self.rooms.members(sess.namespace, room)]

    def leave(self, sess: ServerSession, room: str) -> bool:
        """Take the session out of ``room``."""
        member = self.rooms.leave(sess.namespace, room, sess.sid)
        if member is not None:
            self._presence(sess, room, "$leave", member)
            self.broker.unwant(room_stream(sess.namespace, room), sess.sid)
        return member is not None

    def _presence(
        self, sess: ServerSession, room: str, event: str, member: Member, later: bool = False
    ) -> None:
        """Tell the room's other members that ``member`` came or went: at once on one
        node; with Redis once Redis has decided whether anything changed
        (server/presence.py), ``later`` for a session that goes on elsewhere. A quiet
        member (``Member.quiet``: put in without presence) comes and goes unannounced."""
        if member.quiet:
            return
        data = {"room": room, **member.to_wire()}
        env = Envelope("room", sess.namespace, room, event, data, skip=member.sid)
        if self.cluster is None:
            self.deliver(env)
        elif later:
            window = self.settings.resume_window
            self.cluster.presence.leave_later(env, member, sess.incarnation, window)
        else:
            self.cluster.presence.change(env, member, sess.incarnation)

    def stats(self) -> dict[str, int]:
        """Live object counts and counters (the metrics endpoint, the leak test)."""
        return live_counts(self)
