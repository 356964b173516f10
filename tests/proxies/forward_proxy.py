"""A small HTTP forward proxy, run as its own process by the tests
(``python -m tests.proxies.forward_proxy PORT LOG``): what ``HTTP_PROXY`` points at.

* ``CONNECT host:port`` opens a tunnel (what WebSocket clients and HTTPS use);
* an absolute-form request (``GET http://host:port/path HTTP/1.1``) is forwarded in
  origin form with ``Connection: close`` (one request per connection keeps it simple),
  and the answer streamed back as it comes (SSE, held polls).

Every request line it serves is appended to LOG, so a test can check what went through.
Squid is the real thing (docs/browser.md); it is not installable everywhere.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(log: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    with open(log, "a") as f:
        f.write(f"{method} {target}\n")
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
    else:
        url = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = [
            line
            for line in lines[1:]
            if line and line.split(":", 1)[0].lower() not in ("connection", "proxy-connection")
        ]
        request = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close"])
        up_writer.write(request.encode("latin-1") + b"\r\n\r\n")
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def main(port: int, log: str) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(log, r, w), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
