"""Measure one hostile connection against any anywire tree (figures in docs/hardening/memory.md).

One deaf, then one stalled hostile WebSocket re-joins a 150-member room (~1 KB meta
each) N times at 100/s and never acknowledges; prints the server's RSS growth (peak
during the attack and 5 s after). The helpers come from this branch's
tests/e2e/test_memory_rss.py; the server and test app from the tree it is run in:

    git archive f7bc735 | tar -x -C /tmp/aw-old    # the code before issue #13
    cd /tmp/aw-old && python3 /path/to/anywire/bench/memory_probe.py 1000
"""
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, ".")
RSS_TEST = Path(__file__).resolve().parents[1] / "tests" / "e2e" / "test_memory_rss.py"
from tests.e2e.conftest import start_server  # noqa: E402  (from the tree it is run in)

# The helpers of the new test, without its package-relative imports.
src = RSS_TEST.read_text()
src = src.replace("from .conftest import", "from tests.e2e.conftest import")
src = src.replace("from .raw import", "from tests.e2e.raw import")
mod: dict = {"__name__": "rssmod"}
exec(compile(src, "rssmod", "exec"), mod)

async def main(joins: int) -> None:
    srv = start_server(mod["ENV"])
    try:
        crowd = await mod["_crowd"](srv.url)
        import httpx
        for label in ("deaf", "stalled"):
            h = mod["Hostile"](srv.url, f"hostile-{label}", label == "deaf")
            async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
                await h.open(http)
            before = mod["rss"](srv.proc.pid)
            with mod["Peak"](srv.proc.pid) as peak:
                await h.attack(joins, 100)
                await asyncio.sleep(5)
            grew = (peak.peak - before) / 2**20
            print(f"{label}: sent {h.sent} joins, RSS {before / 2**20:.0f} MB -> "
                  f"peak {peak.peak / 2**20:.0f} MB: +{grew:.1f} MB", flush=True)  # fmt: skip
            await h.close()
        for c in crowd:
            await c.close()
    finally:
        srv.stop()

asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
