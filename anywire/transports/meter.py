"""Charging the WebSocket control frames (ping, pong) that the ASGI app never sees.

The WebSocket server answers pings itself, below ASGI, so a client could make it work
without spending anything. The server's protocol (``anywire.server.wsprotocol``) asks a
:class:`ControlMeter` before handling each ping or pong and hands the meter to the
transport in the connection's scope (``scope["extensions"]["anywire.meter"]``). Until
the connection's first message has attached a session, the meter charges a bucket of
its own (the flood settings, per connection); from then on the transport binds it to the
session's budget, so pings and messages share one budget.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.errors import ProtocolError
from ..core.flood import TokenBucket

__all__ = ["METER_KEY", "ControlMeter"]

METER_KEY = "anywire.meter"
"""The key of the meter in the scope's ``extensions``."""


class ControlMeter:
    """The flood budget of one WebSocket connection's control frames."""

    __slots__ = ("_bucket", "_charge", "flooded", "on_flood")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._charge: Callable[[], None] | None = None
        self.on_flood: Callable[[], None] | None = None
        """Called once when the budget is spent while bound to a session (the transport
        closes the connection with 4008); None: the protocol closes it itself."""
        self.flooded = False

    def bind(self, charge: Callable[[], None], on_flood: Callable[[], None]) -> None:
        """From now on charge the session: ``charge()`` raises ProtocolError when its
        budget is spent; ``on_flood()`` then ends the connection."""
        self._charge = charge
        self.on_flood = on_flood

    def take(self, now: float) -> bool:
        """Charge one control frame; False once the budget is spent (and from then on)."""
        if self.flooded:
            return False
        if self._charge is None:
            ok = self._bucket.take(now)
        else:
            try:
                self._charge()
                ok = True
            except ProtocolError:
                ok = False
        if not ok:
            self.flooded = True
        return ok
