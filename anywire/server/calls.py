"""Server-to-client calls (``sock.call``, ``Anywire.call``) through the session's stream.

A call is an event published on the session's own stream with the caller's address
(node, token) in its envelope. Its ack id is its offset in that stream: unique there, and
the same when a later incarnation of the session replays it. So a call survives what the
stream survives: a drop, a resume on another node, the crash of the session's node. The
node delivering the call to a local session remembers where the answer goes; when the
client's ack arrives it is handed to the caller, in this process or on its node over the
broker. An ack for a call this node never delivered (the client answered an earlier
incarnation of the session and resent its ack after the session moved) finds the caller
in the stream's history.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..core.frames import Ack
from ..core.session import ServerSession
from ..core.streams import session_stream
from .broker import Envelope
from .errors import AckError, AckTimeout, Disconnected

if TYPE_CHECKING:
    from .host import SessionHost

__all__ = ["Calls", "Outcome"]

log = logging.getLogger("anywire")

# How long an answer may take to leave for its caller's node (a Redis PUBLISH, or a
# history read first) before the relay gives up and lets receipts cover it.
_RELAY_BOUND = 5.0

Outcome = dict[str, Any]
"""How a call ended, as it travels between nodes: ``{"ok": True, "d": data}``,
``{"ok": False, "code": str, "message": str}`` (an error ack) or
``{"ok": False, "gone": True, "message": str}`` (the session ended)."""


class Calls:
    """The calls waiting on this node, and where the answers to calls delivered here go."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self._waiting: dict[str, asyncio.Future[Any]] = {}  # token -> the caller's future
        # sid -> {ack id: (caller node, token)} for calls delivered to local sessions.
        self._routes: dict[str, dict[int, tuple[str, str]]] = {}
        # sid -> relays of answers on their way to other nodes (_relay()).
        self._relaying: dict[str, set[asyncio.Task[None]]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    async def call(
        self, namespace: str, sid: str, event: str, data: Any, timeout: float
    ) -> Any:
        """Call session ``sid`` (on any node) and return its ack data. Raises AckTimeout,
        AckError, Disconnected, BrokerUnavailable (the call was not published)."""
        token = secrets.token_urlsafe(9)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[token] = fut
        env = Envelope("session", namespace, sid, event, data, call=(self.host.node_id, token))
        observers = self.host.app.observers
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            await self.host.publish(env)
            async with asyncio.timeout(timeout):
                result = await fut
        except TimeoutError:
            observers.ack_timeout()
            raise AckTimeout(f"no ack for {event!r}") from None
        except AckError:
            observers.ack_round_trip(loop.time() - sent)  # answered, with an error
            raise
        finally:
            self._waiting.pop(token, None)
        observers.ack_round_trip(loop.time() - sent)
        return result

    def delivered(self, sid: str, ack_id: int, caller: tuple[str, str]) -> None:
        """A call was queued for local session ``sid``: its answer goes to ``caller``."""
        self._routes.setdefault(sid, {})[ack_id] = caller

    def answered(self, sess: ServerSession, frame: Ack) -> None:
        """The client acked server call ``frame.id``: hand the outcome to its caller."""
        outcome: Outcome
        if frame.ok:
            outcome = {"ok": True, "d": frame.d}
        else:
            err = frame.err or {}
            code, message = err.get("code", "error"), err.get("message", "")
            outcome = {"ok": False, "code": code, "message": message}
        routes = self._routes.get(sess.sid)
        caller = None if routes is None else routes.pop(frame.id, None)
        if routes is not None and not routes:
            del self._routes[sess.sid]
        if caller is not None:
            if caller[0] == self.host.node_id or self.host.cluster is None:
                self._settle(caller, outcome)
            else:
                self._relay(sess, frame.s, self._hand_over(caller, outcome))
            return
        stream = session_stream(sess.namespace, sess.sid)
        position = sess.stream_position(stream)
        if position is not None:
            self._relay(sess, frame.s, self._find_caller(stream, position[0], frame.id, outcome))

    def _relay(self, sess: ServerSession, seq: int, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work``, which takes the answer in client frame ``seq`` off this node,
        holding back the session's receipts for that frame until it has left: a client
        told its answer arrived (an ``rx``, a 204 to its POST) never sends it again, so
        this node must not die with the answer still in its hands. Bounded: a relay
        that cannot leave gives up (its caller times out) rather than stall receipts."""
        sess.relaying(seq)
        loop = asyncio.get_running_loop()

        async def relay() -> None:
            try:
                async with asyncio.timeout(_RELAY_BOUND):
                    await work
            except TimeoutError:
                log.warning("anywire: the answer to a call could not be relayed in %.0f s",
                            _RELAY_BOUND)  # fmt: skip
            finally:
                sess.relayed(seq, loop.time())
                self.host.wake(sess)  # the receipt held back may go now

        task = asyncio.ensure_future(relay())
        pending = self._relaying.setdefault(sess.sid, set())
        pending.add(task)

        def done(t: asyncio.Task[None]) -> None:
            pending.discard(t)
            if not pending and self._relaying.get(sess.sid) is pending:
                del self._relaying[sess.sid]
            if not t.cancelled() and t.exception() is not None:
                log.error("anywire: relaying a call's answer failed", exc_info=t.exception())

        task.add_done_callback(done)

    async def relayed(self, sid: str) -> None:
        """Wait until the answers that session ``sid``'s frames so far gave to calls of
        other nodes have left this node (each relay is bounded): what a 204 to an
        upstream POST vouches for."""
        pending = self._relaying.get(sid)
        if pending:
            await asyncio.wait(set(pending))

    async def drain(self, timeout: float) -> None:
        """Let answers on their way to other nodes leave (a stopping node), bounded."""
        tasks = {t for pending in self._relaying.values() for t in pending}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _hand_over(self, caller: tuple[str, str], outcome: Outcome) -> None:
        """:meth:`_settle`, returning once an outcome for another node has left."""
        cluster = self.host.cluster
        if caller[0] == self.host.node_id or cluster is None:
            self._settle(caller, outcome)
        else:
            await cluster.deliver_outcome(caller[0], caller[1], outcome)

    async def _find_caller(self, stream: str, epoch: str, ack_id: int, outcome: Outcome) -> None:
        env = await self.host.broker.entry(stream, epoch, ack_id)
        if env is not None and env.call is not None:
            await self._hand_over(env.call, outcome)

    def ended(self, sid: str, for_good: bool) -> None:
        """Session ``sid`` ended here. For good: its unanswered calls fail
        (Disconnected); moved elsewhere: they stay in its stream for the next
        incarnation to answer."""
        routes = self._routes.pop(sid, None)
        if for_good and routes:
            for caller in routes.values():
                self._settle(caller, {"ok": False, "gone": True, "message": "session ended"})

    def _settle(self, caller: tuple[str, str], outcome: Outcome) -> None:
        node, token = caller
        if node == self.host.node_id:
            self.resolve(token, outcome)
        elif self.host.cluster is not None:
            self.host.cluster.send_outcome(node, token, outcome)

    def resolve(self, token: str, outcome: Outcome) -> None:
        """The outcome of call ``token`` made on this node (late ones are ignored)."""
        fut = self._waiting.get(token)
        if fut is None or fut.done():
            return
        if outcome.get("ok"):
            fut.set_result(outcome.get("d"))
        elif outcome.get("gone"):
            fut.set_exception(Disconnected(str(outcome.get("message") or "session ended")))
        else:
            fut.set_exception(AckError(str(outcome.get("code")), str(outcome.get("message"))))
