"""What crossed one transport: plain integer counters, read when metrics are scraped.

Every transport owns one :class:`Traffic` and hands it to each :class:`~.base.Link` it
creates; the session host and the transport add to it where frames are encoded and
decoded. Incrementing an attribute of a slotted object is the cheapest record there is
(no call, no lock): nothing on the fan-out path calls a listener per frame.
"""

from __future__ import annotations

__all__ = ["Traffic"]


class Traffic:
    """Frames and bytes in and out of one transport, and its flood refusals.

    ``frames_*`` count protocol frames (a batch of 10 is 10), ``bytes_*`` the bodies of
    the messages or requests that carried them (UTF-8 for text; headers and framing not
    included). ``flood_refusals`` counts client input refused for flood (the session host
    counts them: HTTP 429 on a session's request, or what ended a WebSocket with 4008)."""

    __slots__ = ("bytes_in", "bytes_out", "flood_refusals", "frames_in", "frames_out")

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.flood_refusals = 0

    def snapshot(self) -> dict[str, int]:
        """The counters as a dict (for the metrics endpoint)."""
        return {name: getattr(self, name) for name in self.__slots__}
