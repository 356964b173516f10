"""Server-Sent Events transport: a streamed GET downstream (always JSON), POST upstream."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from ...core.frames import Connect, Resume
from .transport import NETWORK_ERRORS, ClientTransport, TransportClosed
from .wire import SSEDecoder, decode_frames

__all__ = ["SSETransport"]


class SSETransport(ClientTransport):
    """``GET /sse?ticket=T[&last=N]`` streamed with httpx; ``POST /send`` for upstream."""

    name = "sse"
    write_confirms = True  # a POST answered 204 was processed

    async def _connect(self, first: Connect | Resume) -> None:
        params = {"ticket": first.ticket}
        if isinstance(first, Resume):
            params["last"] = str(first.last)
        # The stream is read by a task: the hello arrives through the inbox like any
        # other frame, so open() waits for it (bounded by the client) the same way.
        self._spawn(self._reader(self.base_url + self.path + "?" + urlencode(params)))

    async def _reader(self, url: str) -> None:
        headers = {**self.headers, "Accept": "text/event-stream", "Cache-Control": "no-store"}
        # No read timeout: the client's silence limit (ping_interval + ping_timeout)
        # decides when a quiet stream is dead, for every transport alike.
        timeout = httpx.Timeout(10.0, read=None)
        try:
            async with self.http.stream("GET", url, headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._end(self._refused(response, "event stream"))
                    return
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    data = decoder.feed(line)
                    if data is None:
                        self._heard()  # a line (a comment keepalive): the path works
                    else:
                        self._deliver(decode_frames(self.codec, data), len(data))
                    if self.closed:
                        return
        except NETWORK_ERRORS as exc:
            self._end(TransportClosed(None, f"event stream failed: {exc!r}"))
            return
        self._end(TransportClosed(None, "event stream ended"))

    async def _write(self, body: bytes) -> None:
        await self._post(body)
