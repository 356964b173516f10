"""The admin view (opt-in): live figures of every node, for the operator's page.

Enabled by ``Anywire(admin_token=...)`` or the ``ANYWIRE_ADMIN_TOKEN`` environment
variable (``anywire serve --admin-token``); off by default. Then:

* ``GET {path}/admin`` is a page for the token holder only (:mod:`.admin_page`);
* the reserved namespace ``/$admin`` admits the token (or a short-lived key derived from
  it, which the page fetches) and nothing else: the application's authenticator is not
  asked, and the application's connect and disconnect hooks do not run there;
* every ``interval`` seconds each node builds a :func:`snapshot` of its own figures and
  sends it as the event ``snapshot`` to every session of ``/$admin``: to its own, and
  through Redis to every other node's (volatile: no stream, no history, at most once;
  a lost snapshot is replaced by the next). The page adds the nodes up and drops a node
  it has not heard from for three intervals.

The figures leave the admin sessions out, and everything is bounded: the ``top`` largest
rooms, 60 buckets of 10 s of activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.auth import Identity
from ..core.errors import AuthError
from ..core.rooms import Rooms
from ..core.session import ServerSession, SessionState
from ..core.settings import TRANSPORTS
from ..transports.base import Link
from .admin_page import AdminPage
from .auth import check_secret
from .broker import Envelope
from .broker_redis import RedisBroker
from .errors import BrokerUnavailable
from .observe import Connection, Observer
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from .app import Anywire
    from .auth import Authenticator

__all__ = [
    "ADMIN_NAMESPACE",
    "Activity",
    "AdminView",
    "Buckets",
    "authenticate",
    "authenticator_for",
    "snapshot",
    "top_rooms",
    "transports",
]

log = logging.getLogger("anywire")

ADMIN_NAMESPACE = "/$admin"
"""The namespace of admin sessions: only the admin token gets in."""

SNAPSHOT = "snapshot"
"""The event carrying one node's figures (and the call that asks for them at once)."""

KEY_TTL = 120.0
"""Lifetime of a page key (seconds): it only has to last until the negotiate it is for."""

_ATTACHED = SessionState.ATTACHED


class _Secret:
    """Bytes that never show in a repr (a traceback with locals, a debugger)."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


class Buckets:
    """Event counts per window of ``width`` seconds, the last ``count`` windows.

    Windows are aligned on the wall clock (``floor(now / width)``), so the series of
    several nodes add up bucket by bucket. ``now`` is passed in (no clock here).
    """

    def __init__(self, names: Sequence[str], width: float = 10.0, count: int = 60) -> None:
        if width <= 0 or count < 1:
            raise ValueError("width must be positive and count at least 1")
        self.width = width
        self.count = count
        self._rows = {name: deque([0] * count, maxlen=count) for name in names}
        self._newest: int | None = None  # index of the newest window

    def _advance(self, now: float) -> None:
        index = int(now // self.width)
        if self._newest is None:
            self._newest = index
            return
        steps = index - self._newest
        if steps <= 0:  # same window, or the clock stepped back: keep counting in it
            return
        for row in self._rows.values():
            row.extend([0] * min(steps, self.count))
        self._newest = index

    def add(self, name: str, now: float, n: int = 1) -> None:
        """Count ``n`` events of ``name`` at ``now``."""
        self._advance(now)
        self._rows[name][-1] += n

    def series(self, now: float) -> dict[str, Any]:
        """``{"width", "end", "counts": {name: [oldest .. newest]}}``; ``end`` is when the
        newest window ends (wall clock)."""
        self._advance(now)
        newest = self._newest if self._newest is not None else int(now // self.width)
        return {
            "width": self.width,
            "end": (newest + 1) * self.width,
            "counts": {name: list(row) for name, row in self._rows.items()},
        }


class Activity(Observer):
    """Connects, resumes and fallbacks per 10-second window over the last 10 minutes
    (admin sessions left out)."""

    NAMES = ("connects", "resumes", "fallbacks")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.buckets = Buckets(self.NAMES)

    def connected(self, conn: Connection, resumed: bool) -> None:
        if conn.namespace != ADMIN_NAMESPACE:
            self.buckets.add("resumes" if resumed else "connects", self.clock())

    def fallback(self, from_transport: str, to_transport: str, reason: str) -> None:
        # (The event names no namespace: an admin page's own fallback counts too.)
        self.buckets.add("fallbacks", self.clock())

    def series(self) -> dict[str, Any]:
        """The windows up to now."""
        return self.buckets.series(self.clock())


def transports(sessions: Iterable[ServerSession]) -> dict[str, int]:
    """Sessions by the transport carrying them now (``detached``: between connections,
    within their resume window); admin sessions left out."""
    counts = dict.fromkeys(TRANSPORTS, 0)
    counts["detached"] = 0
    for sess in sessions:
        if sess.namespace == ADMIN_NAMESPACE:
            continue
        link = sess.connection
        name = link.info.name if sess.state is _ATTACHED and isinstance(link, Link) else "detached"
        counts[name] = counts.get(name, 0) + 1
    return counts


def top_rooms(rooms: Rooms, n: int) -> tuple[int, list[dict[str, Any]]]:
    """How many rooms there are and the ``n`` largest (``ns``, ``room``, ``size``),
    admin namespace left out; O(rooms) time, O(n) memory."""
    count = 0

    def ordinary() -> Iterable[tuple[str, str, int]]:
        nonlocal count
        for item in rooms.sizes():
            if item[0] != ADMIN_NAMESPACE:
                count += 1
                yield item

    largest = heapq.nlargest(n, ordinary(), key=lambda item: item[2])
    return count, [{"ns": ns, "room": room, "size": size} for ns, room, size in largest]


def snapshot(aw: Anywire, activity: Activity, top: int, interval: float) -> dict[str, Any]:
    """This node's figures, as the ``snapshot`` event carries them."""
    host = aw.host
    by_transport = transports(host.sessions.values())
    room_count, largest = top_rooms(host.rooms, top)
    broker: dict[str, Any] = {"kind": "memory", "state": aw.broker.state()}
    if isinstance(aw.broker, RedisBroker):
        broker.update(kind="redis", counters=dict(aw.broker.counters))
        broker["streams"] = aw.broker.stream_count()
    if aw.cluster is not None:
        broker["cluster"] = dict(aw.cluster.counters)
    return {
        "v": 1,
        "node": aw.node_id,
        "at": activity.clock(),
        "interval": interval,
        "sessions": sum(by_transport.values()),
        "transports": by_transport,
        "rooms": {"count": room_count, "top": largest},
        "activity": activity.series(),
        "broker": broker,
    }


class AdminView:
    """The admin view of one :class:`~anywire.server.app.Anywire` (see the module).

    :param token: the admin token (checked by :func:`~anywire.server.auth.check_secret`);
        never logged nor shown.
    :param interval: seconds between two snapshots of this node.
    :param top: how many of the largest rooms a snapshot lists.
    """

    def __init__(
        self,
        aw: Anywire,
        token: str,
        *,
        interval: float = 2.0,
        top: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0 or top < 1:
            raise ValueError("interval must be positive and top at least 1")
        self._token = _Secret(check_secret(token, "admin_token").encode())
        self.aw = aw
        self.interval = interval
        self.top = top
        self.clock = clock
        self.activity = Activity(clock)
        aw.observe(self.activity)
        aw.on(SNAPSHOT, ADMIN_NAMESPACE)(self._answer)  # the page's first paint
        self.page = AdminPage(self, aw.path)
        """``{path}/admin`` and below (server/admin_page.py)."""
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<AdminView node={self.aw.node_id} interval={self.interval}>"  # no token

    # -- credentials ----------------------------------------------------------------------
    def admits(self, presented: str | None) -> bool:
        """Whether ``presented`` is the admin token (constant time)."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self._token.value)

    def key(self) -> str:
        """A key for one negotiate of the page (valid :data:`KEY_TTL` seconds, on every
        node that has the same token): ``<expiry>.<mac>``."""
        expiry = int(self.clock() + KEY_TTL)
        return f"{expiry}.{self._mac(expiry)}"

    def _mac(self, expiry: int) -> str:
        message = f"anywire-admin-key:{expiry}".encode()
        return hmac.new(self._token.value, message, hashlib.sha256).hexdigest()

    def key_valid(self, key: str) -> bool:
        """Whether ``key`` is a page key of this token that has not expired."""
        expiry_text, _, mac = key.partition(".")
        # ASCII digits only: int() refuses some of what isdigit() takes ("²": a ValueError).
        if not (expiry_text.isascii() and expiry_text.isdigit()) or len(expiry_text) > 12:
            return False
        expiry = int(expiry_text)
        now = self.clock()
        if not now < expiry <= now + KEY_TTL + 60:  # (60 s of clock skew between nodes)
            return False
        return hmac.compare_digest(mac.encode("utf-8", "replace"), self._mac(expiry).encode())

    def authenticate(self, token: str | None, scope: Mapping[str, Any]) -> Identity:
        """The authenticator of ``/$admin``: the token or a page key, else AuthError."""
        if not token:
            raise AuthError("missing admin credential", kind="missing")
        if not (self.admits(token) or self.key_valid(token)):
            raise AuthError("admin credential refused", kind="admin")
        return Identity(user="$admin", expires_at=None, claims={"admin": True})

    # -- figures --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """This node's figures now."""
        return snapshot(self.aw, self.activity, self.top, self.interval)

    def _answer(self, sock: Any, data: Any) -> dict[str, Any]:
        return self.snapshot()

    async def publish(self) -> None:
        """Send this node's snapshot to the admin sessions of every node. Only to its own
        when Redis cannot be reached: the page still shows this node's broker down."""
        broker = self.aw.broker
        redis = broker if isinstance(broker, RedisBroker) else None
        local = any(s.namespace == ADMIN_NAMESPACE for s in self.aw.host.sessions.values())
        if not local and redis is None:
            return  # nobody can be watching
        env = Envelope("all", ADMIN_NAMESPACE, None, SNAPSHOT, self.snapshot())
        if local:
            self.aw.host.deliver(env)  # unsequenced: a snapshot has no history
        if redis is not None:
            with contextlib.suppress(BrokerUnavailable):
                await redis.publish_volatile(env)  # the other nodes only

    def start(self) -> None:
        """Start publishing (the app's start)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="anywire-admin")

    async def stop(self) -> None:
        """Stop publishing (the app's stop)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish()
            except Exception:  # a bad round must not end the view
                log.exception("anywire: admin snapshot failed")


def _refused(token: str | None, scope: Mapping[str, Any]) -> Identity:
    raise AuthError("admin view is off", kind="admin")


def authenticator_for(aw: Anywire, namespace: str) -> Authenticator:
    """Who checks the credential of a negotiate for ``namespace``: the admin view for
    ``/$admin`` (which refuses everyone when the view is off), the application's
    authenticator for every other namespace."""
    if namespace != ADMIN_NAMESPACE:
        return aw.auth
    view: AdminView | None = getattr(aw, "admin", None)
    return _refused if view is None else view.authenticate


async def authenticate(
    aw: Anywire, namespace: str, credential: str | None, scope: Mapping[str, Any]
) -> Identity:
    """The identity :func:`authenticator_for` ``namespace`` gives ``credential`` (awaited
    when the authenticator is async), as negotiate and a resume without negotiate check
    it; raises AuthError, also for an authenticator that returned no Identity."""
    identity = authenticator_for(aw, namespace)(credential, scope)
    if inspect.isawaitable(identity):
        identity = await identity
    if not isinstance(identity, Identity):
        raise AuthError("authenticator returned no identity")
    return identity
