"""The real JS client, unchanged, in Deno and in Bun against a real server on every
transport: the scenario of the Node test (tests/js/test_anywhere.py): connect, a call with
its ack, a room event, the connection dropped and the session resumed, a room event after.

Deno has EventSource and sessionStorage of its own, so SSE runs on its EventSource and the
transport is remembered there; Bun has neither, so SSE runs over the streaming fetch
(fetchsse.js) and nothing is remembered. Both runtimes come from the npm registry when they
are not installed (tests/js/runtimes.py); if that fails the tests fail, saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import ROOT, TRANSPORTS, Server, make_token, start_server

from .runtimes import runtime
from .test_anywhere import check

CLIENT = "tests/js/anywhere_client.mjs"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = start_server({})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module", params=("deno", "bun"))
def command(request: pytest.FixtureRequest, server: Server) -> tuple[str, list[str]]:
    """The runtime's name and how to run the client in it (Deno: network to the test
    server only)."""
    name: str = request.param
    try:
        path = runtime(name)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    if name == "deno":
        host = urlsplit(server.url).netloc
        return name, [path, "run", "--no-prompt", f"--allow-net={host}", "--allow-env", CLIENT]
    return name, [path, CLIENT]


def run(command: list[str], server: Server, transport: str) -> dict[str, object]:
    env = {**os.environ, "DENO_NO_UPDATE_CHECK": "1", "DO_NOT_TRACK": "1", "NO_COLOR": "1"}
    proc = subprocess.run(
        [*command, server.url, transport, "node", make_token("rt")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_runtime(command: tuple[str, list[str]], server: Server, transport: str) -> None:
    name, argv = command
    result = run(argv, server, transport)
    check(result, transport)
    deno = name == "deno"
    # The path SSE took (native EventSource or fetchsse.js) is the runtime's, not ours.
    assert result["native"] == {"EventSource": deno, "sessionStorage": deno}
    if deno:  # the transport that worked is remembered in Deno's sessionStorage
        assert result["session"] == [transport]
