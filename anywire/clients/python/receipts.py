"""The client's receipts on a transport that carries ``rx`` frames (WebSocket, SSE).

The rule itself is the core's (:mod:`anywire.core.receipts`); this adds what it cannot
have: the clock and a timer. After each message the pump calls :meth:`ReceiptSender.
after_message`, which feeds the message's size to the rule, sends an ``rx`` if one is
due, and arms a timer for the rule's time limit, so the last frames of a burst are
acknowledged although no further message comes. Long-poll needs none of this: every
poll acknowledges with ``ack=``.
"""

from __future__ import annotations

import asyncio

from ...core.peer import ClientPeer
from .transport import ClientTransport

__all__ = ["ReceiptSender"]


class ReceiptSender:
    """Sends ``peer``'s receipts on ``transport`` as the receipt rule calls for them."""

    def __init__(self, peer: ClientPeer, transport: ClientTransport) -> None:
        self.peer = peer
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._seen = transport.received_bytes

    def after_message(self) -> None:
        """A message was processed: account for its bytes, send an ``rx`` if due."""
        size = self.transport.received_bytes - self._seen
        self._seen += size
        self.peer.received_bytes(size)
        self._check()

    def stop(self) -> None:
        """Cancel the timer (the transport is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        if self.transport.closed:
            self.stop()
            return
        rx = self.peer.rx_due(now=self._loop.time())
        if rx is not None:
            self.transport.send([rx])
        self._arm()

    def _arm(self) -> None:
        deadline = self.peer.rx_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return  # already set for it
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._check()
