"""A minimal protocol-level client for tests that must send exactly the bytes they choose.

It speaks JSON on every transport, does no sequencing of its own and hides nothing: the
tests decide every frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

SHED_WAIT = 30.0
"""Longest a negotiate waits out load shedding in all (the Python client's first connect
waits out a Retry-After of 30 s at most: clients/python/backoff.py)."""


def shed(answer: httpx.Response) -> float | None:
    """The Retry-After of a negotiate refused by load shedding (server/overload.py and
    server/stale.py: 503, code 4000, "server overloaded"), else None."""
    if answer.status_code != 503:
        return None
    try:
        body = answer.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or "overloaded" not in str(body.get("message")):
        return None
    return float(answer.headers.get("retry-after") or body.get("retry_after") or 1)


class RawConn:
    """One transport connection opened with a fresh negotiate."""

    def __init__(
        self, base: str, transport: str, token: str | None, headers: dict[str, str] | None = None
    ) -> None:
        self.base = base
        self.transport = transport
        self.token = token
        self.headers = headers or {}
        self.http = httpx.AsyncClient(base_url=base, timeout=10)
        self.ws: ClientConnection | None = None
        self.neg: dict[str, Any] = {}
        self.target = base  # where the transport connection goes
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.last_seq = 0
        # Cleared, the reader stops taking data (a peer that stops reading): the
        # WebSocket stops reading its socket, SSE its stream, long-poll stops polling.
        self.reading = asyncio.Event()
        self.reading.set()
        # When each SSE comment keepalive arrived (time.monotonic(); the padding excluded).
        self.comments: list[float] = []

    async def negotiate(self, **body: Any) -> httpx.Response:
        """POST negotiate; a load-shedding refusal (:func:`shed`) is waited out as every
        client does (its Retry-After), within :data:`SHED_WAIT`: the test servers shed
        with the default ``shed_lag`` (0.5 s), and side by side on 2 cores a server's
        loop does run that late (CI: test_backpressure's second client got the 503).
        Every other answer, a session cap's 503 included, is returned as it came."""
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + SHED_WAIT
        while True:
            r = await self.http.post(
                "/anywire/negotiate", json={"codecs": ["json"], **body}, headers=headers
            )
            wait = shed(r)
            if wait is None or time.monotonic() + wait > deadline:
                return r
            await asyncio.sleep(wait)  # the server's own Retry-After, as a client waits

    async def open(
        self, resume_last: int | None = None, at: str | None = None, **body: Any
    ) -> dict[str, Any]:
        """Negotiate and open (on the server at ``at``, another node, if given); returns
        the hello frame (or what came instead)."""
        r = await self.negotiate(transports=[self.transport], **body)
        r.raise_for_status()
        self.neg = r.json()
        ticket = self.neg["ticket"]
        target = self.target = at or self.base
        if self.transport == "websocket":
            self.ws = await connect(
                target.replace("http", "ws") + "/anywire/ws",
                additional_headers=self.headers,
                max_size=None,  # batches of large events
                max_queue=1,  # and stop reading the socket soon when not read
            )
            first = {"t": "connect", "ticket": ticket}
            if resume_last is not None:
                first = {"t": "resume", "ticket": ticket, "last": resume_last}
            await self.ws.send(json.dumps(first))
            self._reader = asyncio.create_task(self._read_ws())
        elif self.transport == "sse":
            params: dict[str, Any] = {"ticket": ticket}
            if resume_last is not None:
                params["last"] = resume_last
            self._reader = asyncio.create_task(self._read_sse(params))
        else:
            params = {"ticket": ticket}
            if resume_last is not None:
                params["last"] = resume_last
            r = await self.http.get(target + "/anywire/poll", params=params, headers=self.headers)
            r.raise_for_status()
            for f in r.json():
                self._put(f)
            self._reader = asyncio.create_task(self._read_poll())
        return await self.recv()

    def _put(self, frame: Any) -> None:
        if isinstance(frame, list):
            for f in frame:
                self._put(f)
            return
        if isinstance(frame, dict) and "s" in frame and frame.get("t") in ("event", "ack"):
            self.last_seq = max(self.last_seq, frame["s"])
        self.inbox.put_nowait(frame)

    async def _read_ws(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            while True:
                await self.reading.wait()
                self._put(json.loads(await self.ws.recv()))
        self.inbox.put_nowait({"t": "_closed", "code": self.ws.close_code})

    async def _read_sse(self, params: dict[str, Any]) -> None:
        async with self.http.stream(
            "GET", self.target + "/anywire/sse", params=params, headers=self.headers
        ) as s:
            if s.status_code != 200:
                await s.aread()
                self.inbox.put_nowait({"t": "_http", "status": s.status_code, "body": s.text})
                return
            async for line in s.aiter_lines():
                await self.reading.wait()
                if line.startswith("data:"):
                    self._put(json.loads(line[5:]))
                elif line.startswith(":") and line[1:].strip():
                    self.comments.append(time.monotonic())
        self.inbox.put_nowait({"t": "_closed"})

    async def _read_poll(self) -> None:
        while True:
            await self.reading.wait()
            r = await self.http.get(
                self.target + "/anywire/poll",
                params={"ack": self.last_seq},
                headers={**self.headers, "X-Anywire-Token": self.neg["token"]},
            )
            if r.status_code == 204:
                continue
            if r.status_code != 200:
                self.inbox.put_nowait({"t": "_http", "status": r.status_code, "body": r.text})
                return
            for f in r.json():
                self._put(f)
                if f.get("t") == "close":
                    self.inbox.put_nowait({"t": "_closed"})
                    return

    async def send_raw(
        self, data: bytes | str, content_type: str = "application/json"
    ) -> httpx.Response | None:
        """Send bytes as they are: a WS message, or a POST /send body."""
        if self.transport == "websocket":
            assert self.ws is not None
            await self.ws.send(data)
            return None
        return await self.http.post(
            "/anywire/send",
            content=data,
            headers={
                **self.headers,
                "Content-Type": content_type,
                "X-Anywire-Token": self.neg["token"],
            },
        )

    async def send(self, frame: Any) -> httpx.Response | None:
        return await self.send_raw(json.dumps(frame))

    async def recv(self, timeout: float = 5.0, skip_control: bool = True) -> Any:
        """The next frame (pings answered, rx skipped unless skip_control is False)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.inbox.get()
                if skip_control and frame.get("t") == "ping":
                    await self.send({"t": "pong"})
                    continue
                if skip_control and frame.get("t") in ("rx", "pong"):
                    continue
                return frame

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self.ws is not None:
            await self.ws.close()
        await self.http.aclose()


async def numbers(conn: RawConn, n: int) -> tuple[list[int], int]:
    """The data of the next ``n`` ``n`` events (the test app's numbers), and the sequence
    number of the last frame consumed (resume tests on every transport share it)."""
    out: list[int] = []
    seq = 0
    while len(out) < n:
        frame = await conn.recv()
        seq = frame.get("s", seq)
        if frame.get("t") == "event" and frame.get("e") == "n":
            out.append(frame["d"])
    return out, seq


async def deflate_agreed(base: str, token: str) -> str:
    """Negotiate a WebSocket ticket at ``base`` with ``token``, open the socket offering
    permessage-deflate and answer the ``Sec-WebSocket-Extensions`` the server agreed to
    ("" when none)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        neg = await http.post(
            "/anywire/negotiate",
            json={"transports": ["websocket"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        neg.raise_for_status()
    url = base.replace("http", "ws", 1) + f"/anywire/ws?ticket={neg.json()['ticket']}"
    async with connect(url, compression="deflate", ping_interval=None) as ws:
        return ws.response.headers.get("sec-websocket-extensions") or ""
