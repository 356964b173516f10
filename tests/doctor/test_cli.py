"""``anywire doctor URL --json`` (the CLI, as a user runs it) against a real server, from
behind each restrictive intermediary of tests/proxies (nginx stripping Upgrade, nginx
buffering the event stream, nginx cutting idle upstreams after 5 s) and a TCP proxy that
black-holes connections after their 101; and directly, where all three transports work.

Every run starts at once and they run side by side (a module fixture), so the module
takes about as long as its longest run: the short-idle one, whose hold ladder (1 s, then
7 s) is cut after 5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Server, make_token, start_server
from tests.netfault import FaultProxy
from tests.proxies.nginx import Nginx, restrictive_proxies, start_nginx

BUFFERED = "a proxy buffers event streams: clients that cannot use WebSocket will use long-polling"

# heartbeat 1 s and poll window 3 s, under the short-idle proxy's 5 s (as proxy_test_server)
SHORT = {"AW_PING_INTERVAL": "1", "AW_POLL_WINDOW": "3"}
QUICK = ["--holds", "1", "--timeout", "2"]


@dataclass
class Run:
    code: int
    out: dict[str, Any]

    @property
    def verdicts(self) -> dict[str, str]:
        return {name: t["verdict"] for name, t in self.out["transports"].items()}


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Run]]:
    servers: list[Server] = []
    hole: FaultProxy | None = None
    strip: Nginx | None = None
    try:
        doctored = start_server(SHORT, args=("--doctor",))  # anywire serve --doctor
        servers.append(doctored)
        plain = start_server(SHORT)
        servers.append(plain)
        hole = FaultProxy(doctored.port, hole_after_101=True)
        strip = start_nginx("strip-headers", doctored.port)
        with restrictive_proxies(doctored.port) as nginx, restrictive_proxies(plain.port) as off:
            token = make_token("doctor")
            cases = {
                "direct": [doctored.url, *QUICK],
                "ws-blocked": [nginx["ws-blocked"].url, *QUICK],
                "buffering": [nginx["buffering"].url, *QUICK],
                "short-idle": [nginx["short-idle"].url, "--holds", "1,7", "--timeout", "2"],
                "black-hole": [hole.url, *QUICK],
                "strip-headers": [strip.url, *QUICK],
                "off": [plain.url, "--token", token, *QUICK],
                "off-buffering": [off["buffering"].url, "--token", token, *QUICK],
                "off-no-token": [plain.url, *QUICK],
            }
            command = [sys.executable, "-m", "anywire.server.cli", "doctor", "--json"]
            procs = {
                name: subprocess.Popen(
                    [*command, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                for name, args in cases.items()
            }
            results = {}
            for name, proc in procs.items():
                out, err = proc.communicate(timeout=60)
                assert out, f"{name}: no output; stderr: {err.decode()[-2000:]}"
                results[name] = Run(proc.returncode, json.loads(out))
            yield results
    finally:
        if hole is not None:
            hole.close()
        if strip is not None:
            strip.stop()
        for server in servers:
            server.stop()


def test_direct_all_three_work(runs: dict[str, Run]) -> None:
    run = runs["direct"]
    assert run.code == 0
    assert run.verdicts == {"websocket": "works", "sse": "works", "longpoll": "works"}
    assert run.out["path"]["verdict"] == "works"
    assert run.out["uses"] == "websocket"
    assert run.out["advice"] == ["all three transports work from here"]
    for name in ("websocket", "sse", "longpoll"):
        assert run.out["transports"][name]["rtt_ms"] is not None


def test_upgrade_stripped(runs: dict[str, Run]) -> None:
    run = runs["ws-blocked"]
    assert run.code == 0
    assert run.verdicts == {"websocket": "fails", "sse": "works", "longpoll": "works"}
    assert run.out["uses"] == "sse"
    assert run.out["advice"] == ["WebSocket upgrade refused (HTTP 426): clients will use SSE"]


def test_buffering(runs: dict[str, Run]) -> None:
    run = runs["buffering"]
    assert run.code == 0
    assert run.verdicts == {"websocket": "works", "sse": "fails", "longpoll": "works"}
    assert run.out["facts"]["sse"]["first_event_ms"] > 1000  # held until the stream ended
    assert run.out["advice"] == [BUFFERED]


def test_short_idle(runs: dict[str, Run]) -> None:
    run = runs["short-idle"]
    assert run.code == 0
    assert run.verdicts == {"websocket": "works", "sse": "works", "longpoll": "limited"}
    facts = run.out["facts"]["longpoll"]
    assert facts["held_s"] == 1 and 4.5 <= facts["cut_after_s"] <= 6.5, facts
    assert run.out["advice"] == [
        "idle connections are cut after ~5 s: keep ping_interval and poll_window below that"
    ]


def test_black_hole_after_101(runs: dict[str, Run]) -> None:
    run = runs["black-hole"]
    assert run.code == 0
    assert run.verdicts == {"websocket": "fails", "sse": "works", "longpoll": "works"}
    assert run.out["facts"]["websocket"]["upgraded"] is True
    assert run.out["uses"] == "sse"
    assert run.out["advice"] == [
        "WebSocket upgrades but nothing passes after the 101 (something on the path "
        "black-holes it): clients will use SSE after their connect timeout"
    ]


def test_stripped_headers(runs: dict[str, Run]) -> None:
    run = runs["strip-headers"]
    # No Upgrade either: WebSocket is refused as behind ws-blocked. SSE and long-polling
    # answer, but their sessions' X-Anywire-Token would not arrive: nothing works.
    assert run.code == 1
    assert run.verdicts == {"websocket": "fails", "sse": "fails", "longpoll": "fails"}
    assert run.out["transports"]["sse"]["detail"].endswith("; X-Anywire-Token stripped")
    assert run.out["path"] == {
        "verdict": "limited",
        "detail": "stripped: X- headers, Authorization, cookies",
    }
    assert run.out["advice"] == [
        "WebSocket upgrade refused (HTTP 426): clients will use no transport",
        "the path strips custom X- headers: SSE and long-polling cannot carry their session "
        "token (X-Anywire-Token), so they fail",
        "the path strips the Authorization header: negotiate cannot see bearer tokens",
        "the path strips cookies: cookie sessions and cookie-sticky load balancing will not work",
        "no transport works from here: clients cannot connect",
    ]


def test_doctor_off_probes_the_real_transports(runs: dict[str, Run]) -> None:
    run = runs["off"]
    assert run.code == 0
    assert run.out["facts"]["doctor"] is False
    assert run.verdicts == {"websocket": "works", "sse": "works", "longpoll": "works"}
    assert run.out["path"]["verdict"] == "unchecked"
    assert 2.5 <= run.out["facts"]["longpoll"]["held_s"] <= 4  # a real poll, its 3 s window
    assert run.out["advice"] == [
        "all three transports work from here",
        "not checked: holds longer than the poll window, and whether headers or cookies are "
        "stripped: the server's doctor endpoints are off (anywire serve --doctor)",
    ]


def test_doctor_off_still_sees_buffering(runs: dict[str, Run]) -> None:
    run = runs["off-buffering"]
    assert run.verdicts == {"websocket": "works", "sse": "fails", "longpoll": "works"}
    assert run.out["advice"][0] == BUFFERED


def test_doctor_off_without_token_says_what_it_could_not_check(runs: dict[str, Run]) -> None:
    run = runs["off-no-token"]
    assert run.code == 1
    assert run.verdicts == {"websocket": "unchecked", "sse": "unchecked", "longpoll": "unchecked"}
    assert run.out["advice"][:2] == [
        "no transport could be checked",
        "not checked: the transports: negotiate was refused (HTTP 401) (pass --token)",
    ]
