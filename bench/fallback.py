"""How long the browser client takes to become usable behind each restrictive proxy.

Real Chromium, real nginx (the configurations of ``tests/proxies``), the end-to-end test
app with production timings (ping 20 s, poll window 20 s). For each proxy: the transport
the client lands on, the time from ``connect()`` to ``connected`` on the first page load,
and again after a reload (the remembered transport skips what failed before).

    python3 bench/fallback.py [--runs 3]

Prints a table; the figures in docs/browser.md come from it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import APP, ARGS, CHROMIUM  # noqa: E402
from tests.e2e.conftest import start_server  # noqa: E402
from tests.proxies.nginx import start_nginx  # noqa: E402

SETUPS = [
    ("direct", None, ["websocket", "sse", "longpoll"]),
    ("ws-blocked", "ws-blocked", ["websocket", "sse", "longpoll"]),
    ("buffering (SSE held)", "buffering", ["sse", "longpoll"]),
    ("short-idle (5 s)", "short-idle", ["websocket", "sse", "longpoll"]),
]

MEASURE = """async (transports) => {
  const t0 = performance.now();
  h.open("m", "bench", {transports});
  const s = h.socket("m");
  await s.ready();
  const ms = performance.now() - t0;
  return [s.transport, ms];
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {"AW_PING_INTERVAL": "20", "AW_PING_TIMEOUT": "10", "AW_POLL_WINDOW": "20"}
    server = start_server(env, app=APP)
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for label, conf, transports in SETUPS:
                proxy = start_nginx(conf, server.port) if conf else None
                url = proxy.url if proxy else server.url
                first, again, landed = [], [], set()
                try:
                    for _ in range(args.runs):
                        ctx = browser.new_context()
                        page = ctx.new_page()
                        page.goto(url + "/")
                        page.wait_for_function("document.body.dataset.ready === '1'")
                        name, ms = page.evaluate(MEASURE, transports)
                        landed.add(name)
                        first.append(ms)
                        page.evaluate("h.closeAll()")
                        page.reload()
                        page.wait_for_function("document.body.dataset.ready === '1'")
                        name, ms = page.evaluate(MEASURE, transports)
                        landed.add(name)
                        again.append(ms)
                        ctx.close()
                finally:
                    if proxy:
                        proxy.stop()
                rows.append((label, "/".join(sorted(landed)), first, again))
            browser.close()
    finally:
        server.stop()
    print(f"{'proxy':<22} {'lands on':<10} {'first load (ms)':>16} {'reload (ms)':>12}")
    for label, landed, first, again in rows:
        print(
            f"{label:<22} {landed:<10} {statistics.median(first):>16.0f} "
            f"{statistics.median(again):>12.0f}"
        )
    print(f"(medians of {args.runs} runs; connectTimeout 5000 ms, the client's default)")


if __name__ == "__main__":
    main()
