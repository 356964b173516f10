"""Negotiate's decisions and their credentials: session ids, session tokens and tickets.

* A **session token** names the session, its namespace, its user and the node that issued
  it. Presented to negotiate (``resume``) by the same user, it either resumes the session
  (it still lives) or, when it does not (its node died, its resume window passed), keeps
  its **sid** for the fresh session: events sent to that sid (``emit(to=sid)``, server
  calls) keep reaching the client, and its own stream continues.
* A **ticket** is single-use, lives ``ticket_ttl`` and is redeemed by the transport
  connection. With the stream positions the client reported at negotiate (``since``) it
  lets the fresh session catch up on everything the client holds a position in.

Where the positions travel: in this node's memory for a ticket redeemed here; for one that
another node may redeem (a cluster), *in the ticket itself* when they are few (up to 1 KB:
a user, a session, a namespace and a handful of rooms, the usual case; the SSE and
long-poll URLs stay short), else in Redis beside it. A negotiate whose positions Redis
cannot take fails (503, try again), and a ticket whose positions cannot be found is
refused (4007, negotiate again): a fresh session never starts a stream from "now" while
the client holds a position in it, which would skip events without a ``$lost``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.auth import Identity
from ..core.closecodes import CloseCode
from ..core.errors import AuthError, ProtocolError
from ..core.flood import RESUME_COST
from ..core.tickets import Signer, TicketBook
from .admission import Gate

if TYPE_CHECKING:
    from .cluster import Cluster
    from .host import SessionHost

__all__ = ["Issued", "Issuer", "Redeemed"]

Positions = dict[str, tuple[str, int]]

_CARRIED = 1024  # bytes of positions (JSON) a cluster ticket carries itself


class Issued(NamedTuple):
    """What negotiate tells the client."""

    sid: str
    token: str
    ticket: str
    resumable: bool


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A ticket just redeemed by a transport connection."""

    sid: str
    namespace: str
    identity: Identity
    since: Positions = field(default_factory=dict)
    nonce: str = ""  # its negotiate's, also in the session token issued with it
    ping_interval: float | None = None  # another than the server's, granted at negotiate
    resumes: str | None = None
    """The incarnation of the session copy its negotiate found resumable (None: a fresh
    session). Only that copy may be resumed with it (:meth:`SessionHost.attach`)."""
    presented: str | None = None
    """The nonce of the session token its negotiate was presented (a resume): the copy
    keeps knowing that token (a WebSocket resume without negotiate presents it again)."""


class Issuer:
    """Issues and redeems the credentials of one node."""

    def __init__(self, host: SessionHost, secret: bytes) -> None:
        self.host = host
        self.signer = Signer(secret)
        self.tickets = TicketBook()
        self.gate = Gate(host.settings)  # session caps, negotiate rate (server/admission.py)
        # nonce -> (identity, expiry, positions) of tickets issued here (single node: the
        # identity never leaves this process).
        self._pending: dict[str, tuple[Identity, float, Positions]] = {}

    @property
    def cluster(self) -> Cluster | None:
        return self.host.cluster

    def __len__(self) -> int:
        return len(self._pending)

    # -- negotiate --------------------------------------------------------------------------
    async def issue(
        self,
        identity: Identity,
        namespace: str,
        codec: str,
        resume: str | None,
        since: Positions,
        ip: str | None = None,
        ping_interval: float | None = None,
    ) -> Issued:
        """Decide the session of a negotiate call (see the module docstring). A ticket
        for a new session takes a slot of the session caps of client ``ip`` (an
        :func:`~anywire.core.admission.ip_key`) or raises :class:`.admission.Busy`."""
        sid, resumable = None, False
        if resume:
            sid, resumable, identity = self._resume(identity, namespace, resume)
        if sid is None:
            sid = secrets.token_urlsafe(12)
        wall = time.time()
        nonce = secrets.token_urlsafe(12)
        if not resumable:  # a live session resumed here has its slot already
            self.gate.admit(nonce, identity.user, ip)
        expires = wall + self.host.settings.ticket_ttl
        fields: dict[str, Any] = {
            "k": "t", "sid": sid, "ns": namespace, "c": codec, "n": nonce, "exp": expires
        }
        if ping_interval is not None and ping_interval != self.host.settings.ping_interval:
            fields["pi"] = ping_interval  # granted at negotiate (core/pinginterval.py)
        if resumable:
            # The copy this ticket resumes: a node that holds another copy under the sid
            # (left behind while Redis could not tell it the client had moved on) must
            # not replay its outbox to this client (docs/reliability/sentinel-duplicates.md).
            fields["ri"] = self.host.sessions[sid].incarnation
            fields["rn"] = self.signer.verify(str(resume), "s").get("n")
        anonymous = identity.claims.get("anonymous") is True
        if self.cluster is not None:
            # Any node may redeem the ticket (round-robin): it carries the identity.
            fields["id"] = [identity.user, identity.expires_at, identity.claims]
            if since:
                carried = [[k, e, o] for k, (e, o) in since.items()]
                if len(json.dumps(carried, separators=(",", ":"))) <= _CARRIED:
                    fields["p"] = carried
                else:
                    # Raises BrokerUnavailable: negotiate answers 503 (try again).
                    await self.cluster.keep_positions(
                        nonce, since, self.host.settings.ticket_ttl
                    )
                    fields["pk"] = 1
        ticket = self.signer.sign(fields)
        token = self.signer.sign(
            {"k": "s", "sid": sid, "node": self.host.node_id, "ns": namespace,
             "u": identity.user, "a": anonymous, "n": nonce}
        )  # fmt: skip
        self._pending[nonce] = (identity, expires, since)
        return Issued(sid, token, ticket, resumable)

    def charge_resume(self, token: str) -> None:
        """Charge a negotiate that presents session token ``token`` to that session's flood
        budget, if the session lives here (raises FloodError, 4008). An invalid token
        costs nothing here: the negotiate goes on as a fresh one."""
        try:
            sid = str(self.signer.verify(token, "s").get("sid"))
        except ProtocolError:
            return
        self.host.charge(sid, RESUME_COST, "resumes")

    def resumes(self, identity: Identity, namespace: str, token: str) -> bool:
        """Whether a negotiate by ``identity`` in ``namespace`` presenting session token
        ``token`` would resume its session here (the check :meth:`issue` makes)."""
        return self._resume(identity, namespace, token)[1]

    def _resume(
        self, identity: Identity, namespace: str, token: str
    ) -> tuple[str | None, bool, Identity]:
        """(sid, resumable, identity) for a negotiate that presents a session token."""
        try:
            old = self.signer.verify(token, "s")
        except ProtocolError:
            return None, False, identity
        sid = str(old.get("sid"))
        anonymous = identity.claims.get("anonymous") is True
        sess = self.host.sessions.get(sid)
        if sess is not None and not _issued_by(sess.tickets, old.get("n")):
            # A copy of the session that never issued this token: the client moved on to
            # another copy (a fresh session under the same sid, on another node, while
            # Redis was down and this one was not told). Its outbox is numbered for
            # another sequence than the client's: resuming it would replay frames the
            # client already has as new. The client gets a fresh session (below), which
            # catches up by stream position.
            sess = None
        if sess is not None:
            same_user = sess.user == identity.user or (anonymous and sess.anonymous)
            if same_user and sess.namespace == namespace:
                return sid, True, _as(identity, sess.user) if anonymous else identity
            return None, False, identity
        # The session is not here (its node is gone, or it expired): its sid goes on in a
        # fresh session, for the same user in the same namespace only.
        if old.get("ns") != namespace:
            return None, False, identity
        if anonymous and old.get("a") is True and isinstance(old.get("u"), str):
            return sid, False, _as(identity, str(old["u"]))
        if not anonymous and identity.user is not None and old.get("u") == identity.user:
            return sid, False, identity
        return None, False, identity

    # -- redeeming --------------------------------------------------------------------------
    def codec_of(self, ticket: str) -> str:
        """The codec a ticket was negotiated with (raises AuthError if invalid)."""
        return str(self.signer.verify(ticket, "t", time.time()).get("c", "json"))

    async def redeem(self, ticket: str) -> Redeemed:
        """Check and use up ``ticket``; raises AuthError (4007, 4004) if it cannot open a
        connection."""
        wall = time.time()
        payload = self.signer.verify(ticket, "t", wall)
        nonce = str(payload["n"])
        expires = float(payload["exp"])
        self.tickets.redeem(nonce, expires, wall)
        entry = self._pending.pop(nonce, None)
        since: Positions = {} if entry is None else entry[2]
        if self.cluster is not None:
            kept = await self.cluster.redeem(nonce, expires - wall)
            # Negotiated on this node: the positions are in memory (entry). Elsewhere:
            # in the ticket, or kept in Redis beside it.
            if entry is None and isinstance(payload.get("p"), list):
                since = {str(k): (str(e), int(o)) for k, e, o in payload["p"]}
            elif entry is None and payload.get("pk"):
                if not kept:
                    raise AuthError(
                        "stream positions unavailable (Redis unreachable): negotiate again",
                        CloseCode.SESSION_UNKNOWN,
                    )
                since = kept
        if entry is not None:
            identity = entry[0]
        elif self.cluster is not None and isinstance(payload.get("id"), list):
            user, expires_at, claims = payload["id"]
            identity = Identity(user, expires_at, claims)
        else:
            raise AuthError("ticket unknown on this node", CloseCode.SESSION_UNKNOWN)
        if identity.expires_at is not None and identity.expires_at <= wall:
            raise AuthError("token expired", CloseCode.TOKEN_EXPIRED)
        interval = payload.get("pi")
        resumes, presented = payload.get("ri"), payload.get("rn")
        return Redeemed(
            str(payload["sid"]),
            str(payload["ns"]),
            identity,
            since,
            nonce,
            float(interval) if isinstance(interval, (int, float)) else None,
            resumes if isinstance(resumes, str) else None,
            presented if isinstance(presented, str) else None,
        )

    def session_of(self, token: str) -> tuple[str, dict[str, Any]]:
        """The sid a session token names, and the token's fields (raises AuthError)."""
        payload = self.signer.verify(token, "s")
        return str(payload.get("sid")), payload

    def prune(self, wall: float) -> None:
        """Forget tickets that expired unredeemed."""
        self.tickets.prune(wall)
        stale = [n for n, (_, exp, _) in self._pending.items() if exp <= wall]
        for nonce in stale:
            del self._pending[nonce]


def _issued_by(tickets: list[str], nonce: object) -> bool:
    """Whether a session copy with these ticket nonces issued a token of ``nonce`` (a
    token without one, from before nonces, is taken as its own)."""
    return nonce is None or not tickets or nonce in tickets


def _as(identity: Identity, user: str | None) -> Identity:
    """``identity`` under the user id an anonymous session already had."""
    return Identity(user, identity.expires_at, dict(identity.claims))
