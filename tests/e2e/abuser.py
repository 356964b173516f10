"""A hostile client for the bystander ratio test (tests/e2e/test_flood_ratio.py), run as
its own process: ``python -m tests.e2e.abuser MODE URL TOKEN SECONDS``.

It abuses the server by one means for a bounded time (or until SIGTERM: the test is done
measuring), as fast as one process can, and ignores every ``Retry-After``; it prints one
JSON line of counts at the end.

* ``frames``, ``empty``, ``pings``: a WebSocket sending events (to no handler), empty
  batches ``[]`` or WebSocket pings without pause; after the 4008 close it waits a
  second and resumes, then floods again;
* ``reconnect``: like ``frames``, but after the 4008 close it resumes at once, again and
  again (every refusal included);
* ``fresh``: like ``reconnect``, but never resumes: a new session (a new budget) each
  time, which only the per-address negotiate rate (admission) bounds;
* ``polls``: long-poll requests from 4 keep-alive connections at once (each newer poll
  answers the older one at once);
* ``posts``: POSTs of a ``ping`` frame from 4 keep-alive connections at once;
* ``strangers``: polls with a forged session token from 4 keep-alive connections;
* ``burn``: touches no server and only burns this process's CPU like the others do (the
  control: the bystander's machine is as busy, the server is not).

HTTP is spoken over plain asyncio streams (keep-alive, no client library overhead), so
the abuser is as fast as this machine allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

COUNTS: Counter[str] = Counter()


class Http:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        hdrs = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = await self.reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding") == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            data = b""
        if hdrs.get("connection") == "close":
            self.writer.close()
        return status, hdrs, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Abuser:
    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.ws_url = f"ws://{self.host}:{self.port}/anywire/ws"
        self.token = token
        self.session: str | None = None  # session token, once negotiated
        self.last = 0  # server frames received in order (resume point)
        self.next_s = 1  # next client sequence number
        self.http = Http(self.host, self.port)
        self.mode = ""

    async def negotiate(self, transport: str) -> dict[str, Any] | None:
        body: dict[str, Any] = {"v": 1, "transports": [transport], "codecs": ["json"]}
        if self.session is not None and self.mode != "fresh":
            body["resume"] = self.session
        status, _, data = await self.http.request(
            "POST", "/anywire/negotiate", json.dumps(body).encode(),
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        COUNTS[f"negotiate_{status}"] += 1
        if status != 200:
            return None
        neg: dict[str, Any] = json.loads(data)
        self.session = neg["token"]
        return neg

    async def websocket(self, mode: str, end: float) -> None:
        while time.monotonic() < end:
            neg = await self.negotiate("websocket")
            if neg is None:
                if mode not in ("reconnect", "fresh"):
                    await asyncio.sleep(1.0)
                continue
            first: dict[str, Any] = {"t": "connect", "ticket": neg["ticket"]}
            if neg["resumable"]:
                first = {"t": "resume", "ticket": neg["ticket"], "last": self.last}
            ws = None
            try:
                ws = await connect(self.ws_url, max_size=None, ping_interval=None)
                await ws.send(json.dumps(first))
                hello = json.loads(await self.first_message(ws))
                hello = hello[0] if isinstance(hello, list) else hello
                if hello.get("t") != "hello":
                    COUNTS[f"refused_{hello.get('c')}"] += 1
                    continue
                self.next_s = hello["last"] + 1
                self.last = hello["seq"]
                # Whichever ends first: the flood (time is up, or a send failed) or
                # the reading (the server's close came, maybe while a send waits).
                tasks = [asyncio.create_task(self.drain(ws)),
                         asyncio.create_task(self.flood(ws, mode, end))]  # fmt: skip
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            except (ConnectionClosed, InvalidStatus, OSError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                COUNTS[f"closed_{code}"] += 1
            finally:
                if ws is not None:
                    if mode in ("reconnect", "fresh"):
                        ws.transport.abort()  # no closing handshake: at once, again
                    else:
                        await ws.close()
            if mode not in ("reconnect", "fresh") and time.monotonic() < end:
                await asyncio.sleep(1.0)  # polite: the budget refills meanwhile

    async def first_message(self, ws: Any) -> str:
        """The server's first message; a close frame ends the wait at once (websockets
        would wait for the closing handshake, which a server may drag out)."""
        recv = asyncio.create_task(ws.recv())
        try:
            while not recv.done():
                if ws.protocol.close_rcvd is not None:
                    raise ConnectionClosed(ws.protocol.close_rcvd, None)
                await asyncio.wait((recv,), timeout=0.002)
            return str(recv.result())
        finally:
            recv.cancel()

    async def drain(self, ws: Any) -> None:
        """Read (and drop) what the server sends, so its close is seen."""
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if '"t":"close"' in message:  # the server's close frame: it is over
                    frames = json.loads(message)
                    for frame in frames if isinstance(frames, list) else [frames]:
                        if frame.get("t") == "close":
                            COUNTS[f"close_{frame.get('c')}"] += 1
                    return

    async def flood(self, ws: Any, mode: str, end: float) -> None:
        empty = "[]"
        while time.monotonic() < end:
            for _ in range(100):
                if mode == "pings":
                    await ws.ping()
                elif mode == "empty":
                    await ws.send(empty)
                else:
                    frame = {"t": "event", "s": self.next_s, "e": "nothing", "d": 0}
                    self.next_s += 1
                    await ws.send(json.dumps(frame))
                COUNTS["sent"] += 1
            await asyncio.sleep(0)  # let the reader notice the close

    async def http_flood(self, mode: str, end: float) -> None:
        token = {"X-Anywire-Token": "forged", "Content-Type": "application/json"}
        if mode != "strangers":
            neg = await self.negotiate("longpoll")
            assert neg is not None
            path = f"/anywire/poll?ticket={neg['ticket']}"
            status, _, _ = await self.http.request("GET", path)
            COUNTS[f"open_{status}"] += 1
            token["X-Anywire-Token"] = neg["token"]
        ping = b'{"t":"ping"}'

        async def one(conn: Http) -> None:
            while time.monotonic() < end:
                try:
                    if mode in ("polls", "strangers"):
                        status, _, _ = await conn.request("GET", "/anywire/poll?ack=0", b"", token)
                    else:
                        status, _, _ = await conn.request("POST", "/anywire/send", ping, token)
                except (OSError, asyncio.IncompleteReadError):
                    status = 0
                COUNTS[str(status)] += 1

        conns = [Http(self.host, self.port) for _ in range(4)]
        try:
            await asyncio.gather(*(one(c) for c in conns))
        finally:
            for c in conns:
                c.close()


STOPPED = [False]  # set by SIGTERM: the test is done measuring


def burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end and not STOPPED[0]:
        n += sum(range(1000))
    COUNTS["burned"] = 1


async def main(mode: str, url: str, token: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    abuser = Abuser(url, token)
    # SIGTERM (the test is done measuring) ends the abuse at once, counts still printed.
    work = asyncio.current_task()
    assert work is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, work.cancel)
    try:
        async with asyncio.timeout(seconds + 5):
            abuser.mode = mode
            if mode in ("frames", "empty", "pings", "reconnect", "fresh"):
                await abuser.websocket(mode, end)
            elif mode in ("polls", "posts", "strangers"):
                await abuser.http_flood(mode, end)
    except TimeoutError:
        COUNTS["timeout"] += 1
    except asyncio.CancelledError:
        COUNTS["stopped"] += 1
    finally:
        abuser.http.close()


if __name__ == "__main__":
    MODE, URL, TOKEN, SECONDS = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    signal.signal(signal.SIGTERM, lambda *_: STOPPED.__setitem__(0, True))
    print("ready", flush=True)
    if MODE == "burn":
        burn(SECONDS)
    else:
        asyncio.run(main(MODE, URL, TOKEN, SECONDS))
    print(json.dumps(dict(COUNTS)), flush=True)
