"""Long-polling transport: held GETs downstream, POST upstream.

Each poll carries ``ack=N``, the last server sequence number received in order; the
server forgets what it covers and sends everything after it again, so a lost response
loses nothing. Polls are the heartbeat: no ping frames on this transport.
"""

from __future__ import annotations

import contextlib

import httpx

from ...core.frames import SEQUENCED, Connect, Frame, Hello, Resume
from .transport import NETWORK_ERRORS, ClientTransport, TransportClosed
from .wire import decode_frames

__all__ = ["LongPollTransport"]


class LongPollTransport(ClientTransport):
    """``GET /poll?ticket=T[&last=N]`` then ``GET /poll?ack=N`` in a loop."""

    name = "longpoll"
    write_confirms = True  # a POST answered 204 was processed
    sends_rx = False  # every poll acknowledges with ack=N

    _ack = 0

    async def _connect(self, first: Connect | Resume) -> None:
        params = {"ticket": first.ticket}
        if isinstance(first, Resume):
            params["last"] = str(first.last)
        # The first poll is answered at once with the hello (and whatever is pending).
        response = await self.http.get(
            self.base_url + self.path, params=params, headers=self.headers
        )
        if response.status_code != 200:
            raise self._refused(response, "poll")
        self._deliver(self._decode(response))
        self._spawn(self._poller())

    def silence_limit(self) -> float:
        # Every answer, 204 included, restarts the client's timer, and each poll times
        # out a ping_timeout after poll_window (see _poller): this is only a backstop.
        return self.neg.poll_window + 2 * self.neg.ping_timeout

    def _deliver(self, frames: list[Frame], size: int = 0) -> None:
        # Acknowledge as far as frames arrived in order; the client's own check catches
        # gaps, and an ack past a gap would make the server forget the missing frames.
        for frame in frames:
            if isinstance(frame, Hello):
                self._ack = frame.seq
            elif frame.type in SEQUENCED and frame.s == self._ack + 1:  # type: ignore[union-attr]
                self._ack += 1
        super()._deliver(frames, size)

    def _decode(self, response: httpx.Response) -> list[Frame]:
        # The body is in the negotiated codec, and says so in its Content-Type.
        content_type = response.headers.get("content-type", "")
        codec = self.codecs["msgpack" if "msgpack" in content_type else "json"]
        return decode_frames(codec, response.content)

    async def _poller(self) -> None:
        url = self.base_url + self.path
        headers = {**self.headers, "X-Anywire-Token": self.neg.token}
        # The server answers within poll_window (204 when idle): a poll still open a
        # ping_timeout later means the connection is dead.
        timeout = httpx.Timeout(10.0, read=self.neg.poll_window + self.neg.ping_timeout)
        try:
            while not self.closed:
                await self.pacer.take()  # each poll costs the server a token too
                response = await self.http.get(
                    url, params={"ack": self._ack}, headers=headers, timeout=timeout
                )
                if response.status_code == 204:
                    self._alive()  # an idle session: the server is there all the same
                    continue
                if response.status_code == 200:
                    self._deliver(self._decode(response))
                    continue
                if response.status_code == 410:
                    # The body is a batch holding a close frame: it ends the transport with
                    # the server's code (terminal, or "reconnect and renegotiate").
                    with contextlib.suppress(*NETWORK_ERRORS):
                        self._deliver(self._decode(response))
                self._end(self._refused(response, "poll"))
                return
        except NETWORK_ERRORS as exc:
            self._end(TransportClosed(None, f"poll failed: {exc!r}"))

    async def _write(self, body: bytes) -> None:
        await self._post(body)
