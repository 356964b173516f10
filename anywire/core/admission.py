"""Admission: who may start a session on this node, and how often an IP may negotiate.

Sans-I/O like the rest of the core: the caller passes the time in (any monotonic clock in
seconds) and turns a :class:`Refusal` into its HTTP answer.

Rules (docs/protocol.md section 3.6):

* **Negotiate rate per IP**: a token bucket per client IP (``negotiate_rate`` per second,
  ``negotiate_burst`` at once) charged by every negotiate, checked before any other work.
  Empty: 429, code 4008, ``Retry-After`` = the time until a token is back.
* **Session caps** per node (``max_sessions``), per user (``max_sessions_per_user``) and
  per IP (``max_sessions_per_ip``). A slot is *held* from the negotiate that issues a
  ticket until the ticket is redeemed (the slot becomes the session's) or expires: a
  client cannot take many tickets and redeem them all later. The session's slot is freed
  when it ends. Full: 503, code 4000, ``Retry-After`` = ``busy_retry_after``. A ticket
  redeemed on a node that holds no slot for it (another node issued it) is checked there
  against the node and user caps when its session starts (the connection is closed with
  4000 past them: the client negotiates again).
* A negotiate that resumes a session still alive here takes no new slot (it has one).
* IPv6 clients are counted by their /64 (a host usually gets a whole /64); an IPv4-mapped
  address counts as its IPv4. An unknown address (a Unix socket) is not limited per IP.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from dataclasses import dataclass

from .closecodes import CloseCode
from .flood import TokenBucket
from .settings import Settings

__all__ = ["Admission", "Refusal", "ip_key"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A negotiate refused: HTTP ``status``, close ``code``, ``retry_after`` in whole
    seconds (for the ``Retry-After`` header), and why."""

    status: int
    code: int
    retry_after: int
    message: str


def ip_key(host: str | None) -> str | None:
    """The key a client address is counted under: the IPv4 address, an IPv6 address's
    /64 network, None when there is no address to count."""
    if not host:
        return None
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a proxy's name): counted as given
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class Admission:
    """Session counts and negotiate buckets of one node."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._buckets: dict[str, TokenBucket] = {}  # negotiate rate per IP key
        self._held: dict[str, tuple[str | None, str | None, float]] = {}  # nonce -> user, ip, until
        self._sessions: dict[str, tuple[str | None, str | None]] = {}  # sid -> user, ip
        self._users: Counter[str] = Counter()  # slots (held and live) per user
        self._ips: Counter[str] = Counter()  # slots per IP key
        self._swept = -math.inf

    def __len__(self) -> int:
        """Slots taken on this node: live sessions and held tickets."""
        return len(self._sessions) + len(self._held)

    # -- negotiate ------------------------------------------------------------------------
    def negotiate(self, ip: str | None, now: float) -> Refusal | None:
        """Charge one negotiate of ``ip`` (an :func:`ip_key`) to its bucket; a Refusal
        (429/4008) when the bucket is empty."""
        self._sweep(now)
        if ip is None:
            return None
        s = self.settings
        bucket = self._buckets.get(ip)
        if bucket is None:
            bucket = self._buckets[ip] = TokenBucket(s.negotiate_rate, s.negotiate_burst, now)
        # Checked before taking: unlike a session's budget, a refused negotiate is not
        # charged into debt (the 429 is held back instead, server/admission.py).
        if not bucket.has(now):
            wait = math.ceil(bucket.wait(now)) if s.negotiate_rate > 0 else 60
            message = "too many negotiations from this address"
            return Refusal(429, int(CloseCode.FLOOD), max(1, wait), message)
        bucket.take(now)
        return None

    def check(self, user: str | None, ip: str | None) -> Refusal | None:
        """A Refusal (503/4000) if a new session of ``user`` from ``ip`` would exceed a
        cap, else None."""
        s = self.settings
        if len(self) >= s.max_sessions:
            return self._busy("server at its session limit")
        if user is not None and self._users[user] >= s.max_sessions_per_user:
            return self._busy("too many sessions for this user")
        if ip is not None and self._ips[ip] >= s.max_sessions_per_ip:
            return self._busy("too many sessions from this address")
        return None

    def hold(self, nonce: str, user: str | None, ip: str | None, until: float) -> None:
        """Hold a slot for the ticket ``nonce`` until ``until`` (its expiry)."""
        if nonce in self._held:
            return
        self._held[nonce] = (user, ip, until)
        self._count(user, ip, 1)

    # -- sessions -------------------------------------------------------------------------
    def opened(self, sid: str, nonce: str, user: str | None) -> Refusal | None:
        """Session ``sid`` starts with the ticket ``nonce``: it takes the ticket's slot.
        A ticket without one here (another node's, or held too long) takes a new slot of
        ``user`` if the node and user caps allow, else the Refusal is returned and
        nothing counted (the session must not start)."""
        self.closed(sid)  # a session replaced under the same sid frees its slot
        held = self._held.pop(nonce, None)
        if held is not None:
            self._sessions[sid] = (held[0], held[1])
            return None
        refusal = self.check(user, None)
        if refusal is None:
            self._count(user, None, 1)
            self._sessions[sid] = (user, None)
        return refusal

    def closed(self, sid: str) -> None:
        """Session ``sid`` ended: its slot is free."""
        entry = self._sessions.pop(sid, None)
        if entry is not None:
            self._count(entry[0], entry[1], -1)

    def counts(self) -> dict[str, int]:
        """Figures for the metrics endpoint."""
        return {
            "admission_sessions": len(self._sessions),
            "admission_held": len(self._held),
            "admission_buckets": len(self._buckets),
        }

    # -- internals ------------------------------------------------------------------------
    def _busy(self, message: str) -> Refusal:
        retry = max(1, math.ceil(self.settings.busy_retry_after))
        return Refusal(503, int(CloseCode.SHUTDOWN), retry, message)

    def _count(self, user: str | None, ip: str | None, step: int) -> None:
        for counter, key in ((self._users, user), (self._ips, ip)):
            if key is None:
                continue
            counter[key] += step
            if counter[key] <= 0:
                del counter[key]

    def _sweep(self, now: float) -> None:
        """At most once a second: forget expired holds and buckets that are full again
        (an address that stopped negotiating costs nothing after burst/rate seconds)."""
        if now - self._swept < 1.0:
            return
        self._swept = now
        for nonce in [n for n, (_, _, until) in self._held.items() if until <= now]:
            user, ip, _ = self._held.pop(nonce)
            self._count(user, ip, -1)
        stale = [ip for ip, b in self._buckets.items() if b.has(now, b.burst)]
        for ip in stale:
            del self._buckets[ip]
