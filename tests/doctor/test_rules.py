"""The doctor's verdict rules (anywire/doctor/rules.py), pure, and their JavaScript twin
(anywire/clients/js/doctorrules.js, which the browser page runs): the same facts give the
same verdicts, advice and text in both, word for word."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from anywire.doctor.rules import diagnose, render
from tests.e2e.conftest import ROOT

BUFFERED = "a proxy buffers event streams: clients that cannot use WebSocket will use long-polling"
BUFFERED_LINE = "- " + BUFFERED

NODE = shutil.which("node")

WORKS = {
    "websocket": {"checked": True, "upgraded": True, "passes": True, "rtt_ms": 1.4},
    "sse": {"checked": True, "status": 200, "first_event_ms": 2.5, "rtt_ms": 2.5},
    "longpoll": {"checked": True, "rtt_ms": 3.0, "held_s": 30},
    "path": {"checked": True, "header": True, "authorization": True, "cookie": True},
}


def facts(**changes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: dict(v) for k, v in WORKS.items()}
    for name, fields in changes.items():
        out[name] = {**out[name], **fields}
    return out


VECTORS: dict[str, dict[str, Any]] = {
    "all work": facts(),
    "ws refused": facts(websocket={"upgraded": False, "passes": False, "status": 426}),
    "ws error": facts(websocket={"upgraded": False, "passes": False, "error": "refused"}),
    "ws black hole": facts(websocket={"passes": False, "rtt_ms": None}),
    "sse buffered": facts(sse={"first_event_ms": 3004.6}),
    "sse silent": facts(sse={"first_event_ms": None, "rtt_ms": None, "error": "no event"}),
    "sse timed out": facts(
        sse={"first_event_ms": None, "status": None, "timed_out": True, "error": "no frame"}
    ),
    "sse refused": facts(sse={"first_event_ms": None, "rtt_ms": None, "status": 502}),
    "sse and ws fail": facts(
        websocket={"upgraded": False, "status": 403}, sse={"first_event_ms": 2500}
    ),
    "idle cut": facts(longpoll={"held_s": 1, "cut_after_s": 5.5}),
    "idle cut first hold": facts(longpoll={"held_s": 0, "cut_after_s": 4.49}),
    "longpoll fails": facts(longpoll={"rtt_ms": None, "status": 504}),
    "nothing works": facts(
        websocket={"upgraded": False, "status": 403},
        sse={"first_event_ms": None, "status": 403},
        longpoll={"rtt_ms": None, "error": "ConnectError"},
    ),
    "stripped": facts(path={"header": False, "authorization": False, "cookie": False}),
    "doctor off": {
        **facts(longpoll={"held_s": None}),
        "path": {"checked": False},
        "unchecked": ["holds and headers: the doctor endpoints are off"],
    },
    "nothing checked": {"unchecked": ["the transports: negotiate was refused (HTTP 401)"]},
}


def test_all_work() -> None:
    d = diagnose(VECTORS["all work"])
    assert d["ok"] and d["uses"] == "websocket"
    assert {n: t["verdict"] for n, t in d["transports"].items()} == dict.fromkeys(
        ("websocket", "sse", "longpoll"), "works"
    )
    assert d["advice"] == ["all three transports work from here"]
    assert d["transports"]["websocket"]["rtt_ms"] == 1


@pytest.mark.parametrize(
    ("vector", "verdicts", "advice"),
    [
        ("ws refused", ("fails", "works", "works"),
         "WebSocket upgrade refused (HTTP 426): clients will use SSE"),
        ("ws black hole", ("fails", "works", "works"),
         "WebSocket upgrades but nothing passes after the 101 (something on the path "
         "black-holes it): clients will use SSE after their connect timeout"),
        ("sse buffered", ("works", "fails", "works"),
         BUFFERED),
        ("sse timed out", ("works", "fails", "works"),
         BUFFERED),
        ("sse and ws fail", ("fails", "fails", "works"),
         "WebSocket upgrade refused (HTTP 403): clients will use long-polling"),
        ("idle cut", ("works", "works", "limited"),
         "idle connections are cut after ~6 s: keep ping_interval and poll_window below that"),
        ("idle cut first hold", ("works", "works", "limited"),
         "idle connections are cut after ~4 s: keep ping_interval and poll_window below that"),
        ("nothing works", ("fails", "fails", "fails"),
         "no transport works from here: clients cannot connect"),
        ("nothing checked", ("unchecked", "unchecked", "unchecked"),
         "no transport could be checked"),
    ],
)  # fmt: skip
def test_verdicts(vector: str, verdicts: tuple[str, str, str], advice: str) -> None:
    d = diagnose(VECTORS[vector])
    assert tuple(t["verdict"] for t in d["transports"].values()) == verdicts
    assert advice in d["advice"]
    assert d["ok"] is ("works" in verdicts or "limited" in verdicts)


def test_stripped_headers_and_cookies_are_named() -> None:
    d = diagnose(VECTORS["stripped"])
    assert d["path"] == {
        "verdict": "limited",
        "detail": "stripped: X- headers, Authorization, cookies",
    }
    assert [t["verdict"] for t in d["transports"].values()] == ["works", "fails", "fails"]
    assert len(d["advice"]) == 3 and d["uses"] == "websocket"


def test_unchecked_is_said() -> None:
    d = diagnose(VECTORS["doctor off"])
    assert d["path"]["verdict"] == "unchecked"
    assert d["advice"][-1] == "not checked: holds and headers: the doctor endpoints are off"
    assert d["transports"]["longpoll"]["detail"] == "answered (hold not tried)"


def test_render_is_a_table_with_the_advice() -> None:
    text = render(diagnose(VECTORS["sse buffered"]), "http://x/anywire")
    lines = text.splitlines()
    assert lines[0] == "anywire doctor: http://x/anywire"
    assert lines[1].split() == ["transport", "verdict", "latency", "detail"]
    assert lines[3].split()[:2] == ["sse", "fails"]
    assert "clients will use: WebSocket" in lines
    assert lines[-1] == BUFFERED_LINE


_NODE_SCRIPT = """
import { diagnose, render } from "./anywire/clients/js/doctorrules.js";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = {};
for (const [name, facts] of Object.entries(JSON.parse(input))) {
  const d = diagnose(facts);
  out[name] = { diagnosis: d, text: render(d, "http://x/anywire") };
}
process.stdout.write(JSON.stringify(out));
"""


def test_javascript_rules_agree() -> None:
    assert NODE is not None, "node is required (CI installs it)"
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", _NODE_SCRIPT],
        input=json.dumps(VECTORS), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    js = json.loads(proc.stdout)
    for name, vector in VECTORS.items():
        d = diagnose(vector)
        assert js[name]["diagnosis"] == d, name
        assert js[name]["text"] == render(d, "http://x/anywire"), name
