"""``ANYWIRE_WS_DEFLATE=1 anywire serve --workers 2 --redis URL``: the parent resolves the
setting once and hands it to every worker on its command line; WebSocket clients on the
shared port get permessage-deflate."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import make_token, start_server
from tests.e2e.raw import deflate_agreed

from .conftest import SECRET, RedisServer


def _children(pid: int) -> list[list[str]]:
    """The command lines of ``pid``'s child processes."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append(stat.with_name("cmdline").read_bytes().decode().split("\0"))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return out


async def test_every_worker_deflates(redis: RedisServer) -> None:
    server = start_server(
        {"ANYWIRE_SECRET": SECRET, "ANYWIRE_WS_DEFLATE": "1"},
        args=("--workers", "2", "--redis", redis.url),
    )
    try:
        workers = [c for c in _children(server.proc.pid) if "anywire.server.cli" in c]
        assert len(workers) == 2
        assert all("--ws-deflate" in c for c in workers)
        for _ in range(4):  # fresh connections: the kernel spreads them over the workers
            agreed = await deflate_agreed(server.url, make_token("w"))
            assert agreed.startswith("permessage-deflate")
    finally:
        assert server.stop() == 0
