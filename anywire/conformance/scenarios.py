"""The scenario table: per scenario, what the client is told to do (``steps``), what the
server does (handlers in a per-scenario namespace) and how the outcome is judged.

A check gets the client's step results and what the server observed, and returns None
(pass) or the reason for the failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..server import Anywire, Socket

BURST = 50
DROP_BEFORE, DROP_AFTER = 5, 5


@dataclass
class Seen:
    """What the server observed in one scenario's namespace."""

    connects: int = 0
    resumes: int = 0
    closed_with: int | None = None


Check = Callable[[list[dict[str, Any]], Seen], "str | None"]


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    steps: list[dict[str, Any]]
    check: Check
    install: Callable[[Anywire, str], None]
    hold: float = 0.0  # seconds the server keeps watching after the report (terminal close)
    tags: tuple[str, ...] = field(default=())


def _result(results: list[dict[str, Any]], op: str) -> dict[str, Any]:
    for r in results:
        if r.get("op") == op:
            return r
    return {}


# -- acks both ways ---------------------------------------------------------------------


def _install_acks(aw: Anywire, ns: str) -> None:
    @aw.on("conf.add", namespace=ns)
    async def add(sock: Socket, data: Any) -> Any:
        return data["a"] + data["b"]

    @aw.on("conf.ask", namespace=ns)
    async def ask(sock: Socket, data: Any) -> Any:
        # A server -> client call: the client's handler answers, the answer goes back in
        # this call's ack so the client reports it.
        return {"client_said": await sock.call("conf.echo", {"x": 42}, timeout=5)}


def _check_acks(results: list[dict[str, Any]], seen: Seen) -> str | None:
    calls = [r for r in results if r.get("op") == "call"]
    if len(calls) != 2:
        return f"expected 2 call results, got {len(calls)}"
    if calls[0].get("ack") != 5:
        got = calls[0].get("ack", calls[0].get("error"))
        return f"conf.add {{a: 2, b: 3}} acked {got!r}, expected 5"
    want = {"client_said": {"echo": {"x": 42}}}
    if calls[1].get("ack") != want:
        got = calls[1].get("ack", calls[1].get("error"))
        return f"server->client call conf.echo: got {got!r}, expected {want!r}"
    return None


# -- ordered burst ------------------------------------------------------------------------


def _install_burst(aw: Anywire, ns: str) -> None:
    @aw.on("conf.burst", namespace=ns)
    async def burst(sock: Socket, data: Any) -> Any:
        for i in range(int(data["n"])):
            await sock.emit("n", i)
        return data["n"]


def _check_events(want: list[int]) -> Check:
    def check(results: list[dict[str, Any]], seen: Seen) -> str | None:
        got = _result(results, "wait_events").get("events")
        if got != want:
            return f"events 'n' received {got!r}, expected {want!r} (in order, once each)"
        return None

    return check


# -- drop then resume ---------------------------------------------------------------------


def _install_drop(aw: Anywire, ns: str) -> None:
    @aw.on("conf.drop", namespace=ns)
    async def drop(sock: Socket, data: Any) -> Any:
        for i in range(DROP_BEFORE):
            await sock.emit("n", i)
        # 4000 (SHUTDOWN, a reconnect code) cuts the connection but keeps the session:
        # what follows waits in the session's outbox for the resume.
        await sock.disconnect(4000, "conformance: drop")
        for i in range(DROP_BEFORE, DROP_BEFORE + DROP_AFTER):
            await sock.emit("n", i)
        return "dropped"


def _check_drop(results: list[dict[str, Any]], seen: Seen) -> str | None:
    bad = _check_events(list(range(DROP_BEFORE + DROP_AFTER)))(results, seen)
    if bad:
        return bad
    status = _result(results, "wait_reconnect")
    if not status.get("reconnected"):
        return "the client did not reconnect after the drop (close code 4000)"
    if status.get("recovered") is not True:
        got = status.get("recovered")
        return f"after the drop the client reported recovered={got!r}, expected true"
    if seen.resumes < 1:
        return "the server saw no resume in this scenario's namespace"
    return None


# -- close code classes -------------------------------------------------------------------


def _install_close(aw: Anywire, ns: str) -> None:
    tasks: set[asyncio.Task[None]] = set()

    @aw.on("conf.close", namespace=ns)
    async def close(sock: Socket, data: Any) -> Any:
        async def later() -> None:
            await asyncio.sleep(0.05)  # let the ack go out first; timing is not checked
            await sock.disconnect(int(data["code"]), "conformance: close")

        task = asyncio.create_task(later())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return "closing"


def _check_reconnect(results: list[dict[str, Any]], seen: Seen) -> str | None:
    status = _result(results, "wait_reconnect")
    if not status.get("reconnected"):
        return "the client did not reconnect after close code 4000 (4000-4499: reconnect)"
    if seen.connects + seen.resumes < 2:
        return "the server saw no second connection after close code 4000"
    return None


def _check_terminal(results: list[dict[str, Any]], seen: Seen) -> str | None:
    closed = _result(results, "wait_closed")
    if seen.connects + seen.resumes > 1:
        return (
            "the client reconnected after close code 4505 (4500-4999: terminal, MUST NOT reconnect)"
        )
    if not closed.get("closed"):
        return "the client did not report the terminal close"
    if closed.get("code") != 4505:
        return f"the client reported close code {closed.get('code')!r}, expected 4505"
    return None


def scenarios() -> list[Scenario]:
    """The implemented scenarios, in the order they run (per transport)."""
    return [
        Scenario(
            "acks_both_ways",
            "client->server call answered by the server's ack; server->client call answered "
            "by the client's handler",
            [
                {"op": "handle", "event": "conf.echo"},
                {"op": "connect"},
                {"op": "call", "event": "conf.add", "data": {"a": 2, "b": 3}},
                {"op": "call", "event": "conf.ask", "data": None},
                {"op": "close"},
            ],
            _check_acks,
            _install_acks,
        ),
        Scenario(
            "ordered_burst",
            f"the server emits {BURST} events in a burst: all arrive, in order, once",
            [
                {"op": "collect", "event": "n"},
                {"op": "connect"},
                {"op": "call", "event": "conf.burst", "data": {"n": BURST}},
                {"op": "wait_events", "event": "n", "count": BURST, "timeout": 10},
                {"op": "close"},
            ],
            _check_events(list(range(BURST))),
            _install_burst,
        ),
        Scenario(
            "drop_then_resume",
            f"the server cuts the connection (4000) after {DROP_BEFORE} events and emits "
            f"{DROP_AFTER} more: the client resumes (recovered: true), nothing lost or duplicated",
            [
                {"op": "collect", "event": "n"},
                {"op": "connect"},
                {"op": "call", "event": "conf.drop", "data": None},
                {"op": "wait_reconnect", "timeout": 10},
                {
                    "op": "wait_events",
                    "event": "n",
                    "count": DROP_BEFORE + DROP_AFTER,
                    "timeout": 10,
                },
                {"op": "close"},
            ],
            _check_drop,
            _install_drop,
        ),
        Scenario(
            "close_reconnect_40xx",
            "the server closes with 4000: the client must reconnect by itself",
            [
                {"op": "connect"},
                {"op": "call", "event": "conf.close", "data": {"code": 4000}},
                {"op": "wait_reconnect", "timeout": 10},
                {"op": "close"},
            ],
            _check_reconnect,
            _install_close,
        ),
        Scenario(
            "close_terminal_45xx",
            "the server closes with 4505: the client must stop and must not reconnect",
            [
                {"op": "connect"},
                {"op": "call", "event": "conf.close", "data": {"code": 4505}},
                {"op": "wait_closed", "timeout": 10},
            ],
            _check_terminal,
            _install_close,
            hold=1.5,
        ),
    ]
