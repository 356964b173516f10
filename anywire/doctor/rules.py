"""The doctor's verdicts: what the probe measured, in plain words. Pure functions.

The probe (:mod:`anywire.doctor.probe`, or the browser page's ``doctor.js``) records
*facts* per transport; :func:`diagnose` turns them into a verdict per transport
(``works``, ``limited``, ``fails``, ``unchecked``), advice, and the transport clients
will end up on. :func:`render` writes the result as the text table the CLI prints and
the page copies.

These rules are written twice, here and in ``anywire/clients/js/doctorrules.js`` (the
browser page runs them without a server round trip); ``tests/doctor/test_rules.py``
runs both on the same facts and asserts they agree word for word.

Facts (every key optional; a missing or null value reads as "not measured")::

    {"websocket": {"checked", "upgraded", "status", "passes", "rtt_ms", "error"},
     "sse":       {"checked", "status", "first_event_ms", "rtt_ms", "error", "timed_out"},
     "longpoll":  {"checked", "status", "rtt_ms", "held_s", "cut_after_s", "error"},
     "path":      {"checked", "header", "authorization", "cookie"},
     "unchecked": ["what could not be checked, and why", ...]}
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["NAMES", "ORDER", "SSE_PROMPT_MS", "diagnose", "render"]

ORDER = ("websocket", "sse", "longpoll")
"""The clients' order of preference."""

NAMES = {"websocket": "WebSocket", "sse": "SSE", "longpoll": "long-polling"}

SSE_PROMPT_MS = 1000
"""An event stream whose first event (sent at once) takes longer than this is held back
by something on the path: a buffering proxy, an antivirus, compression."""

Facts = dict[str, Any]


def _round(x: float) -> int:
    # Half up, as JavaScript's Math.round: Python's round() rounds half to even.
    return math.floor(x + 0.5)


def _websocket(f: Facts) -> tuple[str, str | None, str]:
    """(verdict, advice with {next}, detail)."""
    if not f.get("checked"):
        return "unchecked", None, "not checked"
    if not f.get("upgraded"):
        status = f.get("status")
        if status is not None:
            return (
                "fails",
                f"WebSocket upgrade refused (HTTP {status}): clients will use {{next}}",
                f"upgrade refused (HTTP {status})",
            )
        error = f.get("error") or "no answer"
        return (
            "fails",
            f"WebSocket could not connect ({error}): clients will use {{next}}",
            f"upgrade failed: {error}",
        )
    if not f.get("passes"):
        return (
            "fails",
            "WebSocket upgrades but nothing passes after the 101 (something on the path "
            "black-holes it): clients will use {next} after their connect timeout",
            "upgraded (101), then nothing came back",
        )
    return "works", None, "upgraded (101), a message passed both ways"


def _sse(f: Facts) -> tuple[str, str | None, str]:
    if not f.get("checked"):
        return "unchecked", None, "not checked"
    first = f.get("first_event_ms")
    status = f.get("status")
    if first is None and status is not None and status != 200:
        return (
            "fails",
            f"the event stream was refused (HTTP {status}): clients will use {{next}}",
            f"refused (HTTP {status})",
        )
    if first is None:
        if status == 200 or f.get("timed_out"):
            # The first event is sent at once: a stream that stays silent is held back.
            why = f.get("error") or "stream opened, no event arrived"
            return "fails", "a proxy buffers event streams: clients will use {next}", why
        error = f.get("error") or "no answer"
        return (
            "fails",
            f"the event stream failed ({error}): clients will use {{next}}",
            f"failed: {error}",
        )
    if first > SSE_PROMPT_MS:
        return (
            "fails",
            "a proxy buffers event streams: clients will use {next}",
            f"first event held back for {_round(first)} ms",
        )
    return "works", None, f"first event after {_round(first)} ms"


def _longpoll(f: Facts) -> tuple[str, str | None, str]:
    if not f.get("checked"):
        return "unchecked", None, "not checked"
    if f.get("rtt_ms") is None:
        status = f.get("status")
        why = f"HTTP {status}" if status is not None else (f.get("error") or "no answer")
        return (
            "fails",
            f"long-polling failed ({why}): clients cannot fall back to it",
            f"failed: {why}",
        )
    held = f.get("held_s")
    cut = f.get("cut_after_s")
    if cut is not None:
        n = _round(cut)
        return (
            "limited",
            f"idle connections are cut after ~{n} s: keep ping_interval and poll_window below that",
            f"a held request was cut after ~{n} s"
            + (f" (held {_fmt(held)} s fine)" if held else ""),
        )
    if held:
        return "works", None, f"held {_fmt(held)} s without a cut"
    return "works", None, "answered (hold not tried)"


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def _path(f: Facts) -> tuple[str, list[str], str]:
    if not f.get("checked"):
        return "unchecked", [], "not checked"
    advice: list[str] = []
    lost: list[str] = []
    if f.get("header") is False:
        lost.append("X- headers")
        advice.append(
            "the path strips custom X- headers: SSE and long-polling cannot carry their "
            "session token (X-Anywire-Token), so they fail"
        )
    if f.get("authorization") is False:
        lost.append("Authorization")
        advice.append(
            "the path strips the Authorization header: negotiate cannot see bearer tokens"
        )
    if f.get("cookie") is False:
        lost.append("cookies")
        advice.append(
            "the path strips cookies: cookie sessions and cookie-sticky load balancing "
            "will not work"
        )
    if lost:
        return "limited", advice, "stripped: " + ", ".join(lost)
    return "works", [], "X- header, Authorization and cookie arrive"


def diagnose(facts: Facts) -> dict[str, Any]:
    """Verdicts and advice for the probe's ``facts`` (see the module docstring).

    Returns ``{"transports": {name: {"verdict", "detail", "rtt_ms"}}, "path": {...},
    "uses": name or None, "ok": bool, "advice": [str, ...]}``; ``ok`` is False when no
    transport works (the CLI's exit code).
    """
    rules = {"websocket": _websocket, "sse": _sse, "longpoll": _longpoll}
    found = {name: rules[name](facts.get(name) or {}) for name in ORDER}
    path = facts.get("path") or {}
    if path.get("checked") and path.get("header") is False:
        # The clients send the session token of SSE and long-poll requests in
        # X-Anywire-Token: where it is stripped those sessions fail after the first frame.
        for name in ("sse", "longpoll"):
            if found[name][0] in ("works", "limited"):
                found[name] = ("fails", None, found[name][2] + "; X-Anywire-Token stripped")
    usable = [n for n in ORDER if found[n][0] in ("works", "limited")]
    advice: list[str] = []
    transports: dict[str, Any] = {}
    for i, name in enumerate(ORDER):
        verdict, text, detail = found[name]
        rtt = (facts.get(name) or {}).get("rtt_ms")
        transports[name] = {
            "verdict": verdict,
            "detail": detail,
            "rtt_ms": None if rtt is None else _round(rtt),
        }
        if text is not None:
            later = [n for n in usable if ORDER.index(n) > i]
            earlier = [n for n in usable if ORDER.index(n) < i]
            if earlier:  # most clients stay on the earlier one: say who falls back
                text = text.replace(
                    "clients will use", f"clients that cannot use {NAMES[earlier[0]]} will use"
                )
            advice.append(text.replace("{next}", NAMES[later[0]] if later else "no transport"))
    verdict, path_advice, detail = _path(path)
    advice += path_advice
    uses = usable[0] if usable else None
    if all(found[n][0] == "unchecked" for n in ORDER):
        advice.append("no transport could be checked")
    elif uses is None:
        advice.append("no transport works from here: clients cannot connect")
    elif len(usable) == len(ORDER) and not advice:
        advice.append("all three transports work from here")
    advice += [f"not checked: {what}" for what in facts.get("unchecked") or []]
    return {
        "transports": transports,
        "path": {"verdict": verdict, "detail": detail},
        "uses": uses,
        "ok": uses is not None,
        "advice": advice,
    }


def render(diagnosis: dict[str, Any], url: str = "") -> str:
    """The diagnosis as the text the CLI prints and the page copies."""
    lines = [f"anywire doctor: {url}"] if url else []
    lines.append(f"{'transport':<13}{'verdict':<11}{'latency':<10}detail")
    for name in ORDER:
        t = diagnosis["transports"][name]
        rtt = "-" if t["rtt_ms"] is None else f"{t['rtt_ms']} ms"
        lines.append(f"{name:<13}{t['verdict']:<11}{rtt:<10}{t['detail']}")
    p = diagnosis["path"]
    lines.append(f"{'headers':<13}{p['verdict']:<11}{'':<10}{p['detail']}")
    uses = diagnosis["uses"]
    if uses is not None:
        lines.append(f"clients will use: {NAMES[uses]}")
    elif all(diagnosis["transports"][n]["verdict"] == "unchecked" for n in ORDER):
        lines.append("clients will use: unknown (nothing could be checked)")
    else:
        lines.append("clients will use: nothing (no transport works)")
    lines += [f"- {a}" for a in diagnosis["advice"]]
    return "\n".join(lines) + "\n"
