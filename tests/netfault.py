"""A TCP proxy for network faults in tests: forward, refuse (every connection reset, new
ones refused), black-hole (connections stay open, nothing passes) or one-way (requests
pass, answers are lost), switched at will;
or, with ``hole_after_101``, a proxy that lets WebSocket upgrades through and then passes
nothing more on the upgraded connections (as some middleboxes do).

It runs its own event loop in a thread, so it is independent of the tests' loops; every
switch applies to the connections already open as well as to new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

__all__ = ["FaultProxy"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FaultProxy:
    """127.0.0.1:``port`` -> 127.0.0.1:``upstream``."""

    def __init__(
        self,
        upstream: int,
        idle_cut: float | None = None,
        hole_after_101: bool = False,
        record: bool = False,
    ) -> None:
        """``idle_cut``: close every connection that carried no byte either way for that
        many seconds (a proxy or NAT with a short idle timeout). ``hole_after_101``:
        swallow everything on a connection after its ``101 Switching Protocols``.
        ``record``: keep every byte that passes, either way, in :attr:`recorded` (what
        crossed the wire)."""
        self.upstream = upstream
        self.record = record
        self.recorded = bytearray()
        self.idle_cut = idle_cut
        self.hole_after_101 = hole_after_101
        self._holed: set[asyncio.StreamWriter] = set()  # connections (client side) upgraded
        self.cuts = 0  # connections closed for idleness
        self.connections = 0  # connections accepted (refused ones included)
        self.port = _free_port()
        self.mode = "forward"
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        # Every connection's task until it ends (its pumps and idle watch end before it):
        # close() waits for them.
        self._conns: set[asyncio.Task[None]] = set()
        self._seen: dict[asyncio.StreamWriter, float] = {}  # connection -> last byte
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("proxy did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server: asyncio.Server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        # close() ended every task first (_shutdown): nothing is left pending here for
        # the loop's destructor to warn about.
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._conns.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        self._seen[writer] = self._loop.time()
        pumps = asyncio.gather(
            self._pump(reader, up_writer, writer),
            self._pump(up_reader, writer, writer),
            return_exceptions=True,
        )
        if self.idle_cut is not None:
            watch = self._loop.create_task(self._idle_watch(writer, up_writer))
            await pumps
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)  # ended with its connection
        else:
            await pumps
        self._seen.pop(writer, None)
        self._holed.discard(writer)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _idle_watch(self, client: asyncio.StreamWriter, up: asyncio.StreamWriter) -> None:
        assert self.idle_cut is not None
        while True:
            idle = self._loop.time() - self._seen[client]
            if idle >= self.idle_cut:
                self.cuts += 1
                client.transport.abort()
                up.transport.abort()
                return
            await asyncio.sleep(self.idle_cut - idle)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        key: asyncio.StreamWriter,
    ) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            self._seen[key] = self._loop.time()
            if self.record:
                self.recorded += data
            if self.mode == "blackhole" or key in self._holed:
                continue  # swallowed: the peer waits forever
            if self.mode == "oneway" and writer is key:
                continue  # an answer to the client: lost (its request went through)
            if self.hole_after_101 and writer is key and data.startswith(b"HTTP/1.1 101"):
                self._holed.add(key)  # the 101 itself gets through, nothing after it
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    def set(self, mode: str) -> None:
        """``forward``, ``refuse`` (resets every open connection too), ``blackhole`` or
        ``oneway`` (to the upstream only: a request is served, its answer lost)."""
        if mode not in ("forward", "refuse", "blackhole", "oneway"):
            raise ValueError(mode)
        done = threading.Event()

        def apply() -> None:
            self.mode = mode
            if mode == "refuse":
                for w in list(self._writers):
                    w.transport.abort()
                self._writers.clear()
            done.set()

        self._loop.call_soon_threadsafe(apply)
        if not done.wait(5):
            raise RuntimeError("proxy did not switch")

    async def _shutdown(self) -> None:
        """Refuse, close the listener, reset every connection, and wait until each one's
        task (its pumps, its idle watch) has ended before the loop stops. Stopping the
        loop right after the resets left them pending (their wake-ups come a few loop
        turns later): "Task was destroyed but it is pending!" for ``_idle_watch`` and
        ``_handle`` when the proxy was collected."""
        self.mode = "refuse"
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        conns = set(self._conns)
        if conns:
            # A reset wakes every pump within a few turns; the bound is only against a
            # bug here hanging the test's teardown.
            _, stuck = await asyncio.wait(conns, timeout=5)
            for t in stuck:
                t.cancel()

    def close(self) -> None:
        """Stop the proxy: every connection reset, every task ended, the loop closed."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
