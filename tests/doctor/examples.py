"""Prints the example runs of docs/doctor.md: ``python3 -m tests.doctor.examples``.

The test app with the doctor endpoints on (and one without), directly and behind the
intermediaries of tests/proxies and tests/netfault.py; each case is ``anywire doctor`` as
a user runs it. About 30 s.
"""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import ROOT, make_token, start_server
from tests.netfault import FaultProxy
from tests.proxies.nginx import restrictive_proxies

SHORT = {"AW_PING_INTERVAL": "1", "AW_POLL_WINDOW": "3"}


def main() -> None:
    srv = start_server(SHORT, args=("--doctor",))
    plain = start_server(SHORT)
    hole = FaultProxy(srv.port, hole_after_101=True)
    token = make_token("doctor")
    try:
        with restrictive_proxies(srv.port) as ng, restrictive_proxies(plain.port) as off:
            cases = [
                ("direct", srv.url, ["--holds", "2"]),
                ("ws-blocked", ng["ws-blocked"].url, ["--holds", "2"]),
                ("buffering", ng["buffering"].url, ["--holds", "2"]),
                ("short-idle", ng["short-idle"].url, ["--holds", "2,10"]),
                ("black-hole", hole.url, ["--holds", "2"]),
                ("off+token", plain.url, ["--token", token]),
                ("off-buffering", off["buffering"].url, ["--token", token]),
                ("off, no token", plain.url, ["--holds", "2"]),
            ]
            for name, url, extra in cases:
                args = ["doctor", url, "--timeout", "3", *extra]
                cmd = [sys.executable, "-m", "anywire.server.cli", *args]
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
                shown = " ".join("$TOKEN" if a == token else a for a in args)
                print(f"### {name}\n$ anywire {shown}\n{proc.stdout}", end="")
                print(f"(exit status {proc.returncode})\n{proc.stderr[-500:]}")
    finally:
        hole.close()
        srv.stop()
        plain.stop()


if __name__ == "__main__":
    main()
