"""In-band credential refresh for the Python client (protocol section 11.4).

When negotiate says the credential expires (``expires_in``), the client asks its token
source for a fresh one at 80% of the lifetime and hands it to the live session in an
``auth`` frame, on whatever transport carries it: no reconnect, and nothing in flight is
disturbed (the frame is one more in the connection's ordered send queue). The server's
``ack`` gives the new lifetime, and the next refresh is planned from it. A refusal or a
lost answer is tried again, closer to the deadline; should the deadline pass anyway, the
server closes with 4004 and the client reconnects with a fresh credential as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...core.frames import Auth
from .errors import ClientError
from .negotiate import TokenSource, resolve_token

if TYPE_CHECKING:
    from .client import Client

__all__ = ["REFRESH_AT", "Refresher", "for_client", "refresh_delays"]

log = logging.getLogger("anywire.client")

REFRESH_AT = 0.8
"""Share of the credential's lifetime after which it is refreshed."""

_RETRY_MIN = 0.2  # seconds: the shortest wait before a failed refresh is tried again


def refresh_delays(lifetime: float, at: float = REFRESH_AT) -> tuple[float, float]:
    """When to refresh a credential valid for ``lifetime`` seconds, and when to try again
    after a failure, given ``remaining`` seconds are left then: the first is
    ``lifetime * at``; the second half of what remains (at least 0.2 s)."""
    first = max(0.0, lifetime * at)
    return first, max(_RETRY_MIN, (lifetime - first) / 2)


class Refresher:
    """Plans and sends the refreshes of one client's credential.

    ``send(frame)`` hands an ``auth`` frame to the live connection (False: none is live);
    ``register(ack_id)`` returns the future the matching ack resolves (the client's call
    table) and ``next_id()`` a fresh request id.
    """

    def __init__(
        self,
        token: TokenSource,
        send: Callable[[Auth], bool],
        register: Callable[[int], asyncio.Future[Any]],
        forget: Callable[[int], None],
        next_id: Callable[[], int],
        timeout: Callable[[], float],
        at: float = REFRESH_AT,
    ) -> None:
        self.token = token
        self.send = send
        self.register = register
        self.forget = forget
        self.next_id = next_id
        self.timeout = timeout
        self.at = at
        self.refreshed = 0
        """Refreshes the server accepted (for tests and monitoring)."""
        self._task: asyncio.Task[None] | None = None

    def start(self, expires_in: float | None) -> None:
        """A connection is live and its credential expires in ``expires_in`` seconds
        (None: never): plan the next refresh, replacing any planned before."""
        self.stop()
        if expires_in is not None:
            self._task = asyncio.create_task(self._run(expires_in), name="anywire-refresh")

    def stop(self) -> None:
        """The connection ended (or the client closes): plan nothing."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _run(self, lifetime: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = loop.time() + lifetime
            wait, _ = refresh_delays(lifetime, self.at)
            await asyncio.sleep(wait)
            while True:
                fresh = await self._refresh()
                if fresh is not None or loop.time() >= deadline:
                    break
                # Refused or unanswered: try again closer to the deadline.
                await asyncio.sleep(max(_RETRY_MIN, (deadline - loop.time()) / 2))
            if fresh is None or fresh <= 0 or fresh == float("inf"):
                return  # expired (the server's 4004 takes over), or never expires now
            lifetime = fresh

    async def _refresh(self) -> float | None:
        """One refresh: the new lifetime in seconds (``inf`` if it never expires), or
        None if it failed."""
        try:
            token = await resolve_token(self.token)
        except ClientError as exc:
            log.warning("anywire: token refresh failed: %s", exc)
            return None
        if not token:
            return None
        ack_id = self.next_id()
        fut = self.register(ack_id)
        try:
            if not self.send(Auth(ack_id, token)):
                return None
            async with asyncio.timeout(self.timeout()):
                answer = await fut
        except (ClientError, TimeoutError) as exc:
            log.warning("anywire: token refresh refused: %s", exc)
            return None
        finally:
            self.forget(ack_id)
            fut.cancel()  # (a no-op once answered)
        self.refreshed += 1
        expires = answer.get("expires_in") if isinstance(answer, dict) else None
        if isinstance(expires, bool) or not isinstance(expires, int):
            return float("inf")
        return expires / 1000


def for_client(client: Client, token: TokenSource) -> Refresher:
    """The refresher of ``client``, wired to its live connection and its call table."""

    def send(frame: Auth) -> bool:
        live = client._live
        if live is None or client.state != "connected":
            return False
        live.send([frame])  # the ordered queue: after every frame emitted before
        return True

    def register(ack_id: int) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        client._calls[ack_id] = fut
        return fut

    def forget(ack_id: int) -> None:
        client._calls.pop(ack_id, None)

    return Refresher(
        token, send, register, forget, lambda: client.peer.next_id(), client._ack_timeout
    )
