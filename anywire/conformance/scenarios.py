"""The scenario table: per scenario, what the client is told to do (``steps``), what the
server does (handlers in a per-scenario namespace) and how the outcome is judged.

A check gets the client's step results and what the server observed, and returns None
(pass) or the reason for the failure.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..server import Anywire, Socket
from ..server.faults import Faults

BURST = 50
HISTORY = 20  # the kit's stream_history: a gap past it is announced with $lost
GAP = HISTORY + 20  # events sent while the client is away in the gap scenario
DROP_BEFORE, DROP_AFTER = 5, 5


def _drop_steps() -> list[dict[str, Any]]:
    """The steps of a drop and a resume (drop_then_resume, resume_without_negotiate): a
    fresh list each time, as every scenario owns its steps."""
    return [
        {"op": "collect", "event": "n"},
        {"op": "connect"},
        {"op": "call", "event": "conf.drop", "data": None},
        {"op": "wait_reconnect", "timeout": 10},
        {"op": "wait_events", "event": "n", "count": DROP_BEFORE + DROP_AFTER, "timeout": 10},
        {"op": "close"},
    ]


@dataclass
class Seen:
    """What the server observed in one scenario's namespace."""

    connects: int = 0
    resumes: int = 0
    closed_with: int | None = None
    duplicates: int = 0
    transport: str | None = None
    closes: list[int] = field(default_factory=list)  # close codes of ended connections
    faulted_of: tuple[Faults, str] | None = None  # the hook and the session it faulted
    flooded: list[int] = field(default_factory=list)  # what conf.flood was given, in order
    refused: int = 0  # requests refused for flood (4008 / 429)
    buffered: int = 0  # SSE bodies the kit held back (sse_buffered)
    most_unacked: int = 0  # receipts: the most frames the outbox held during the burst
    rx_frames: int = 0  # receipts: the count of the rule the kit advertises (rx.frames)
    tail_ms: float | None = None  # receipts: how long the burst's tail waited for its rx
    negotiates: int = 0  # negotiate requests for this namespace (the kit counts them)


Check = Callable[[list[dict[str, Any]], Seen], "str | None"]


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    steps: list[dict[str, Any]]
    check: Check
    install: Callable[[Anywire, str, Seen], None]  # server side, in the namespace
    hold: float = 0.0  # seconds the server keeps watching after the report (terminal close)
    # Where the scenario means something (long-poll acknowledges every frame with the
    # next poll, so nothing is left to repeat there).
    transports: tuple[str, ...] = ("websocket", "sse", "longpoll")
    refuse_websocket: bool = False  # the kit answers every WebSocket upgrade with 403
    refuse_sse: bool = False  # the kit answers every SSE request with 502 (a proxy's error)
    buffer_sse: bool = False  # the kit holds SSE bodies back (a buffering proxy)
    # Timed on the client's side (how soon it acknowledges): with ``--parallel`` the kit
    # hands it out with no other run out, whose work would share the driver's CPU.
    alone: bool = False


def _result(results: list[dict[str, Any]], op: str) -> dict[str, Any]:
    for r in results:
        # "wait_events_lost": the wait_events step for event "$lost"
        key = r.get("op", "") + ("_lost" if r.get("step_event") == "$lost" else "")
        if key == op:
            return r
    return {}


# -- acks both ways ---------------------------------------------------------------------


def _install_acks(aw: Anywire, ns: str, seen: Seen) -> None:
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


def _install_burst(aw: Anywire, ns: str, seen: Seen) -> None:
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


def _install_drop(aw: Anywire, ns: str, seen: Seen) -> None:
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


def _check_one_connection(results: list[dict[str, Any]], seen: Seen) -> str | None:
    bad = _check_drop(results, seen)
    if bad:
        return bad
    if seen.negotiates != 1:
        return (
            f"the client negotiated {seen.negotiates} times, expected once (the first "
            "connect): a WebSocket resume may skip negotiate when its answer said "
            "ws_resume (protocol section 2.2.1)"
        )
    return None


# -- duplicated frames ---------------------------------------------------------------------


def _install_dup(aw: Anywire, ns: str, seen: Seen) -> None:
    @aw.on("conf.dup", namespace=ns)
    async def dup(sock: Socket, data: Any) -> Any:
        for i in range(DROP_BEFORE):
            await sock.emit("n", i)
        sess = aw.host.sessions[sock.sid]
        # Wait (bounded) until the connection was given those frames, then hand the last
        # ones again: the next write repeats frames (same sequence numbers) the client has
        # already had, as a retransmission would.
        async with asyncio.timeout(5):
            while sess.written < sess.out_seq:
                await asyncio.sleep(0.01)
        again = Faults.install(aw).repeat(sock, 3)
        seen.duplicates += again
        for i in range(DROP_BEFORE, DROP_BEFORE + DROP_AFTER):
            await sock.emit("n", i)
        return again


def _check_dup(results: list[dict[str, Any]], seen: Seen) -> str | None:
    if seen.duplicates < 1:
        return "the kit could not repeat a frame (the client had acknowledged them all)"
    return _check_events(list(range(DROP_BEFORE + DROP_AFTER)))(results, seen)


# -- transport fallback ----------------------------------------------------------------------


def _install_fallback(aw: Anywire, ns: str, seen: Seen) -> None:
    @aw.on("conf.where", namespace=ns)
    async def where(sock: Socket, data: Any) -> Any:
        seen.transport = sock.transport
        return sock.transport


def _check_fallback(results: list[dict[str, Any]], seen: Seen) -> str | None:
    landed = _result(results, "connect").get("transport")
    if landed != "sse":
        return f"with WebSocket refused the client landed on {landed!r}, expected 'sse'"
    ack = _result(results, "call").get("ack")
    if ack != "sse" or seen.transport != "sse":
        return f"the server saw the call on {seen.transport!r} (ack {ack!r}), expected 'sse'"
    return None


# -- token refresh ---------------------------------------------------------------------------

TOKEN_TTL = 5  # seconds: the reference clients refresh at 80% of it (1 s of margin: 3 s left
# 0.6 s, too little for the token fetch and the auth round trip on a loaded machine)


def _install_refresh(aw: Anywire, ns: str, seen: Seen) -> None:
    @aw.on("conf.exp", namespace=ns)
    async def exp(sock: Socket, data: Any) -> Any:
        return sock.claims.get("exp")


def _check_refresh(results: list[dict[str, Any]], seen: Seen) -> str | None:
    calls = [r for r in results if r.get("op") == "call"]
    waited = _result(results, "wait_refreshed")
    if not waited.get("refreshed"):
        return f"the client did not refresh its {TOKEN_TTL} s credential in-band"
    if seen.connects != 1 or seen.resumes:
        return (
            f"the server saw {seen.connects} connection(s) and {seen.resumes} resume(s): "
            "a refresh must not reconnect"
        )
    if len(calls) != 2 or not all(isinstance(c.get("ack"), int) for c in calls):
        return f"the calls for the credential's exp failed: {calls!r}"
    if calls[1]["ack"] <= calls[0]["ack"]:
        return f"the session's exp did not move ({calls[0]['ack']} then {calls[1]['ack']})"
    return None


# -- resume after the window --------------------------------------------------------------


def _install_expire(aw: Anywire, ns: str, seen: Seen) -> None:
    @aw.on("conf.expire", namespace=ns)
    async def expire(sock: Socket, data: Any) -> Any:
        away = int(data["away"])
        for i in range(DROP_BEFORE):
            await sock.emit("n", i)

        async def later() -> None:
            await asyncio.sleep(0.05)  # let the ack go out first; timing is not checked
            sid = sock.sid
            await sock.disconnect(4000, "conformance: drop past the window")
            # The resume window passing, without waiting it out: the server forgets the
            # session as its expiry would (its stream stays, section 7.4).
            Faults.install(aw).expire(sock)
            # Sent to the session's stream while no session holds it: the fresh session
            # catches up on it from the client's position.
            for i in range(DROP_BEFORE, DROP_BEFORE + away):
                await aw.emit("n", i, to=sid, namespace=ns)

        aw.host.spawn(later())  # the host's: kept, awaited at shutdown, failures logged
        return "expiring"


def _check_expire(results: list[dict[str, Any]], seen: Seen) -> str | None:
    status = _result(results, "wait_reconnect")
    if not status.get("reconnected"):
        return "the client did not reconnect after its session was forgotten"
    if status.get("recovered") is not False:
        got = status.get("recovered")
        return f"the client reported recovered={got!r} for a forgotten session, expected false"
    first = _result(results, "connect").get("sid")
    if status.get("sid") != first:
        return f"the fresh session has sid {status.get('sid')!r}, expected the same {first!r}"
    return _check_events(list(range(DROP_BEFORE + DROP_AFTER)))(results, seen)


def _check_gap(results: list[dict[str, Any]], seen: Seen) -> str | None:
    status = _result(results, "wait_reconnect")
    if status.get("recovered") is not False:
        return f"expected a fresh session (recovered: false), got {status.get('recovered')!r}"
    lost = _result(results, "wait_events_lost").get("events") or []
    if not lost:
        return f"no $lost event although {GAP} events were sent past a history of {HISTORY}"
    got = _result(results, "wait_events").get("events") or []
    total = DROP_BEFORE + GAP
    if got[:DROP_BEFORE] != list(range(DROP_BEFORE)) or not got or got[-1] != total - 1:
        return (
            f"events 'n' {got!r}: expected 0..{DROP_BEFORE - 1}, then a gap, ending at {total - 1}"
        )
    if any(b <= a for a, b in itertools.pairwise(got)):
        return f"events 'n' out of order or duplicated: {got!r}"
    span = lost[0].get("to")
    if span is not None:
        announced = span - lost[0]["from"] + 1
        if announced != total - len(got):
            return f"$lost announced {announced} offsets, but {total - len(got)} events are missing"
    return None


# -- close code classes -------------------------------------------------------------------


def _install_close(aw: Anywire, ns: str, seen: Seen) -> None:
    @aw.on("conf.close", namespace=ns)
    async def close(sock: Socket, data: Any) -> Any:
        async def later() -> None:
            await asyncio.sleep(0.05)  # let the ack go out first; timing is not checked
            await sock.disconnect(int(data["code"]), "conformance: close")

        aw.host.spawn(later())  # the host's: kept, awaited at shutdown, failures logged
        return "closing"


# -- 4004 TOKEN_EXPIRED, then a fresh credential and a resume -------------------------------

LATE_TTL = 2  # seconds


def _check_expired(results: list[dict[str, Any]], seen: Seen) -> str | None:
    if 4004 not in seen.closes:
        return f"the server never closed with 4004 (closes seen: {seen.closes})"
    status = _result(results, "wait_reconnect")
    if not status.get("reconnected"):
        return "the client did not reconnect after 4004 TOKEN_EXPIRED"
    if status.get("recovered") is not True or seen.resumes < 1:
        return (
            f"after 4004 the client reported recovered={status.get('recovered')!r} and the "
            f"server saw {seen.resumes} resume(s): it must resume with a fresh credential"
        )
    # After the deadline nothing of the session runs until it resumed with a fresh
    # credential (section 11.4): the second call is answered with that credential's exp.
    calls = [r for r in results if r.get("op") == "call"]
    if len(calls) != 2 or not all(isinstance(c.get("ack"), int) for c in calls):
        return f"the calls before and after the 4004 must both be answered: {calls!r}"
    if calls[1]["ack"] <= calls[0]["ack"]:
        return (
            f"after the resume the session's exp did not move ({calls[0]['ack']} then "
            f"{calls[1]['ack']}): it must run on the fresh credential"
        )
    return None



# -- faults on the next frames: reordered, duplicated, lost, a drop at frame k ------------

FAULTED = 5  # frames a fault affects (of DROP_BEFORE + DROP_AFTER events)
DROP_AT = 3  # the connection is cut after this many frames in drop_at_frame


def _install_fault(kind: str) -> Callable[[Anywire, str, Seen], None]:
    def install(aw: Anywire, ns: str, seen: Seen) -> None:
        faults = Faults.install(aw)

        @aw.on("conf.fault", namespace=ns)
        async def fault(sock: Socket, data: Any) -> Any:
            if kind == "reorder":
                faults.reorder(sock, FAULTED)
            elif kind == "duplicate":
                faults.duplicate(sock, FAULTED)
            elif kind == "lose":
                faults.lose(sock, FAULTED)
            else:
                faults.drop_after(sock, DROP_AT)
            for i in range(DROP_BEFORE + DROP_AFTER):
                await sock.emit("n", i)
            # Counted once the client reported (the hook spends its fault as frames go by).
            seen.faulted_of = (faults, sock.sid)
            return kind

    return install


def _check_fault(what: str, resume: bool = False) -> Check:
    def check(results: list[dict[str, Any]], seen: Seen) -> str | None:
        faults, sid = seen.faulted_of or (None, "")
        touched = faults.applied.get(sid, 0) if faults is not None else 0
        if not touched:
            return f"the kit could not {what} (no frame went through its fault hook)"
        bad = _check_events(list(range(DROP_BEFORE + DROP_AFTER)))(results, seen)
        if bad:
            return f"after the server {what}: {bad}"
        if resume and seen.resumes < 1:
            return "the server saw no resume after it cut the connection"
        return None

    return check


# -- fallback down to long-poll -------------------------------------------------------------


def _check_fallback_longpoll(results: list[dict[str, Any]], seen: Seen) -> str | None:
    landed = _result(results, "connect").get("transport")
    if landed != "longpoll":
        return (
            f"with WebSocket refused (403) and SSE failing (502) the client landed on "
            f"{landed!r}, expected 'longpoll'"
        )
    ack = _result(results, "call").get("ack")
    if ack != "longpoll" or seen.transport != "longpoll":
        return f"the server saw the call on {seen.transport!r} (ack {ack!r}), expected 'longpoll'"
    return None


# -- SSE held back by a buffering proxy -----------------------------------------------------

BUFFERED = 65536  # bytes of an SSE body the kit holds back before passing any on
OPEN_TIMEOUT = 2  # seconds: the connect step's connect_timeout in sse_buffered


def _check_buffered(results: list[dict[str, Any]], seen: Seen) -> str | None:
    landed = _result(results, "connect").get("transport")
    if landed != "longpoll":
        return (
            f"with SSE held back (the stream opens, no event arrives, as behind a buffering "
            f"proxy) the client landed on {landed!r}, expected 'longpoll': a stream with no "
            f"hello within the open timeout ({OPEN_TIMEOUT} s asked) has failed"
        )
    ack = _result(results, "call").get("ack")
    if ack != "longpoll" or seen.transport != "longpoll":
        return f"the server saw the call on {seen.transport!r} (ack {ack!r}), expected 'longpoll'"
    if not seen.buffered:
        return "the kit held back no SSE body (the client never opened the SSE stream)"
    return None


# -- every close code ------------------------------------------------------------------------

RECONNECT_CODES = (4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008)
TERMINAL_CODES = (4500, 4501, 4502, 4503, 4505, 4506, 4507)


def _close_steps() -> list[dict[str, Any]]:
    # A fresh client per code: one client closed nine times in a row would rightly back
    # off longer each time (its connections do not outlive its longest delay).
    steps: list[dict[str, Any]] = []
    for n, code in enumerate(RECONNECT_CODES, start=1):
        steps.append({"op": "connect"})
        steps.append({"op": "call", "event": "conf.close", "data": {"code": code}})
        steps.append({"op": "wait_reconnect", "count": 2 * n, "timeout": 10})
        steps.append({"op": "close"})
    return steps


def _check_reconnect_all(results: list[dict[str, Any]], seen: Seen) -> str | None:
    waits = [r for r in results if r.get("op") == "wait_reconnect"]
    for code, r in zip(RECONNECT_CODES, waits, strict=False):
        if not r.get("reconnected"):
            return f"the client did not reconnect after close code {code} (4000-4499: reconnect)"
    if len(waits) != len(RECONNECT_CODES):
        return f"expected {len(RECONNECT_CODES)} wait_reconnect results, got {len(waits)}"
    if seen.connects + seen.resumes < 2 * len(RECONNECT_CODES):
        return (
            f"the server saw {seen.connects + seen.resumes} connections, expected "
            f"{2 * len(RECONNECT_CODES)} (per reconnect code: the first, and the reconnect)"
        )
    return None


def _terminal_steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for code in TERMINAL_CODES:
        steps.append({"op": "connect"})
        steps.append({"op": "call", "event": "conf.close", "data": {"code": code}})
        steps.append({"op": "wait_closed", "timeout": 10})
    return steps


def _check_terminal_all(results: list[dict[str, Any]], seen: Seen) -> str | None:
    closed = [r for r in results if r.get("op") == "wait_closed"]
    for code, r in zip(TERMINAL_CODES, closed, strict=False):
        if not r.get("closed"):
            return f"the client did not report the terminal close {code}"
        if r.get("code") != code:
            return f"the client reported close code {r.get('code')!r}, expected {code}"
    if len(closed) != len(TERMINAL_CODES):
        return f"expected {len(TERMINAL_CODES)} wait_closed results, got {len(closed)}"
    extra = seen.connects + seen.resumes - len(TERMINAL_CODES)
    if extra > 0:
        after = [c for c in seen.closes if c in TERMINAL_CODES]
        return (
            f"the client reconnected {extra} time(s) after terminal close codes {after} "
            "(4500-4999: terminal, MUST NOT reconnect)"
        )
    return None


# -- limits ----------------------------------------------------------------------------------

OVERSIZED = 70_000  # bytes of padding: over the kit's max_frame_size (65536, the default)


def _install_big(aw: Anywire, ns: str, seen: Seen) -> None:
    @aw.on("conf.big", namespace=ns)
    async def big(sock: Socket, data: Any) -> Any:
        return len(str(data))  # never reached: the frame is refused first

    @aw.on("conf.alive", namespace=ns)
    async def alive(sock: Socket, data: Any) -> Any:
        return "alive"


def _check_big(results: list[dict[str, Any]], seen: Seen) -> str | None:
    calls = [r for r in results if r.get("op") == "call"]
    call = calls[0] if calls else {}
    if "ack" in call and "error" not in call:
        return f"a {OVERSIZED}-byte frame was acked ({call['ack']!r}): it must be refused"
    error = str(call.get("error") or "")
    if 4503 in seen.closes or "4503" in error or "HTTP 413" in error:
        # Section 14.9: no message may exceed max_frame_size (known from negotiate); one
        # frame over it cannot be split, so it must never be sent. The server's 4503 is
        # terminal: the client lost its session for one bad call.
        return (
            "the client sent a frame over max_frame_size and the server closed the session "
            "with 4503 (terminal): it must refuse such a frame itself, before sending "
            "(protocol section 14, item 9), and keep its session"
        )
    if not error:
        return "the client reported no error for a frame over max_frame_size"
    words = ("too big", "too large", "max_frame_size", "limit")
    if not any(w in error.lower() for w in words):
        return f"the client's error does not say the frame was too big: {error[:200]!r}"
    after = calls[1] if len(calls) > 1 else {}
    if after.get("ack") != "alive":
        got = after.get("ack", after.get("error"))
        return f"after refusing the oversized frame the next call got {got!r}, expected 'alive'"
    if seen.connects + seen.resumes > 1:
        return (
            f"after the oversized frame the client connected again "
            f"({seen.connects + seen.resumes} connections): nothing was wrong with it"
        )
    return None


# -- receipts: the advertised rule --------------------------------------------------------

RECEIPTS = 201  # events of the receipts scenario (with the call's ack: 202, not 16 * k)
RECEIPTS_OUTBOX = 256  # the kit's outbox_size: the advertised rx.frames is 64, a quarter
TAIL_GRACE = 2.0  # seconds beyond the rule's time limit the tail may take (scheduling)


def _unacked(aw: Anywire, sid: str) -> int:
    sess = aw.host.sessions[sid]
    return sess.out_seq - sess.floor + 1


def _install_receipts(aw: Anywire, ns: str, seen: Seen) -> None:
    seen.rx_frames = aw.settings.client_rx().frames

    @aw.on("conf.receipts", namespace=ns)
    async def receipts(sock: Socket, data: Any) -> Any:
        for i in range(int(data["n"])):
            await sock.emit("n", i)
            if i % 10 == 9:
                # Paced, so the client's receipts come back while the burst goes on
                # (a real pause: what is measured is how the client acknowledges).
                await asyncio.sleep(0.01)
            seen.most_unacked = max(seen.most_unacked, _unacked(aw, sock.sid))
        return data["n"]

    @aw.on("conf.settled", namespace=ns)
    async def settled(sock: Socket, data: Any) -> Any:
        # Everything sent before this call must be acknowledged within the rule's time
        # limit without anything more being sent: watched here, bounded.
        loop = asyncio.get_running_loop()
        sess, start = aw.host.sessions[sock.sid], loop.time()
        target, limit = sess.out_seq, aw.settings.client_rx().ms / 1000 + TAIL_GRACE
        while sess.floor - 1 < target and loop.time() - start < limit:
            await asyncio.sleep(0.02)
        if sess.floor - 1 >= target:
            seen.tail_ms = (loop.time() - start) * 1000
        return sess.floor - 1


def _check_receipts(results: list[dict[str, Any]], seen: Seen) -> str | None:
    got = _result(results, "wait_events").get("events")
    if got != list(range(RECEIPTS)):
        return f"events 'n' received {len(got or [])} of {RECEIPTS}, or out of order"
    if seen.tail_ms is None:
        return (
            f"the last frames of the burst were still unacknowledged {TAIL_GRACE:g} s after "
            "the advertised time limit (negotiate's rx.ms): the client must send rx when "
            "frames have waited that long, by a timer (protocol section 6.4)"
        )
    # The advertised count (64 in the kit: RECEIPTS_OUTBOX); the outbox may hold a few
    # more while the client's receipt is on its way. Far more: the client ignores it.
    if seen.most_unacked > 2 * seen.rx_frames + 20:
        return (
            f"the outbox held {seen.most_unacked} unacknowledged frames during the burst: "
            "the client must send rx every rx.frames frames at most (protocol section 6.4)"
        )
    return None


# -- flood: upstream faster than the budget -------------------------------------------------

# The kit's flood budget (Settings.flood_rate / flood_burst for every scenario), small so
# a flood is over in a second: a paced client spends 90% of the rate from half the burst
# (protocol 13.4), so FLOOD calls take it about 0.7 s. The burst is below max_batch (100):
# a client that does not pace sends a message it cannot pay for.
FLOOD_RATE, FLOOD_BURST = 200.0, 40
FLOOD = 150  # calls the client is asked to make at once (more than one max_batch of 100)


def _install_flood(aw: Anywire, ns: str, seen: Seen) -> None:
    @aw.on("conf.flood", namespace=ns)
    async def flood(sock: Socket, data: Any) -> Any:
        seen.flooded.append(data["i"])
        return data["i"]


def _check_flood(results: list[dict[str, Any]], seen: Seen) -> str | None:
    r = _result(results, "flood")
    acks, errors = r.get("acks"), r.get("errors") or {}
    refused = f"the server refused it for flood (4008 / 429) {seen.refused} time(s)"
    if errors:
        first = min(errors, key=int)
        return (
            f"{len(errors)} of {FLOOD} calls failed ({refused}); call {first}: "
            f"{str(errors[first])[:200]}: a client must pace, or back off after 4008 and "
            "resume without losing what it sent"
        )
    if acks != list(range(FLOOD)):
        return f"the acks of calls 0..{FLOOD - 1} were {str(acks)[:200]}, expected each i"
    if sorted(seen.flooded) != list(range(FLOOD)):
        extra = len(seen.flooded) - len(set(seen.flooded))
        return (
            f"the server's handler ran {len(seen.flooded)} times ({extra} repeats) for "
            f"{FLOOD} calls ({refused}): each acked call must be processed once"
        )
    if seen.flooded != sorted(seen.flooded):
        return f"the server received the calls out of order ({refused}): {seen.flooded[:40]}"
    return None


def _fault_steps() -> list[dict[str, Any]]:
    return [
        {"op": "collect", "event": "n"},
        {"op": "connect"},
        {"op": "call", "event": "conf.fault", "data": None},
        {"op": "wait_events", "event": "n", "count": DROP_BEFORE + DROP_AFTER, "timeout": 10},
        {"op": "close"},
    ]


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
            _drop_steps(),
            _check_drop,
            _install_drop,
        ),
        Scenario(
            "resume_without_negotiate",
            "as drop_then_resume on a WebSocket: the client resumes by opening the WebSocket "
            "with resume{token, last} and no negotiate (protocol 2.2.1, a MAY: one connection "
            "per resume)",
            _drop_steps(),
            _check_one_connection,
            _install_drop,
            transports=("websocket",),
        ),
        Scenario(
            "duplicate_frames",
            f"after {DROP_BEFORE} events the server repeats up to 3 frames already written "
            f"(same sequence numbers), then sends {DROP_AFTER} more: the client must drop "
            "the repeats",
            [
                {"op": "collect", "event": "n"},
                {"op": "connect"},
                {"op": "call", "event": "conf.dup", "data": None},
                {
                    "op": "wait_events",
                    "event": "n",
                    "count": DROP_BEFORE + DROP_AFTER,
                    "timeout": 10,
                },
                {"op": "close"},
            ],
            _check_dup,
            _install_dup,
            transports=("websocket", "sse"),
        ),
        Scenario(
            "transport_fallback",
            "every WebSocket upgrade is refused (403): a client allowed websocket then sse "
            "must land on sse by itself",
            [
                {"op": "connect", "transports": ["websocket", "sse"]},
                {"op": "call", "event": "conf.where", "data": None},
                {"op": "close"},
            ],
            _check_fallback,
            _install_fallback,
            transports=("websocket",),
            refuse_websocket=True,
        ),
        Scenario(
            "token_refresh",
            f"the client connects with a {TOKEN_TTL} s credential from GET "
            "/conformance/token: it must refresh it in-band (auth frame) before it expires, "
            "without reconnecting",
            [
                {"op": "connect", "token": {"sub": "refresher", "ttl": TOKEN_TTL}},
                {"op": "call", "event": "conf.exp", "data": None},
                {"op": "wait_refreshed", "timeout": 8},
                {"op": "call", "event": "conf.exp", "data": None},
                {"op": "close"},
            ],
            _check_refresh,
            _install_refresh,
        ),
        Scenario(
            "resume_after_window",
            "the server forgets the session while the client is away (as after "
            "resume_window): the client gets recovered: false under the same sid and "
            "catches up on the events sent meanwhile",
            [
                {"op": "collect", "event": "n"},
                {"op": "connect"},
                {"op": "call", "event": "conf.expire", "data": {"away": DROP_AFTER}},
                {"op": "wait_reconnect", "timeout": 10},
                {
                    "op": "wait_events",
                    "event": "n",
                    "count": DROP_BEFORE + DROP_AFTER,
                    "timeout": 10,
                },
            ],
            _check_expire,
            _install_expire,
        ),
        Scenario(
            "lost_gap",
            f"while the client is away past its session, {GAP} events go to its stream, "
            f"whose history holds {HISTORY}: the client must get $lost for the gap, then "
            "the rest in order",
            [
                {"op": "collect", "event": "n"},
                {"op": "collect", "event": "$lost"},
                {"op": "connect"},
                {"op": "call", "event": "conf.expire", "data": {"away": GAP}},
                {"op": "wait_reconnect", "timeout": 10},
                {"op": "wait_events", "event": "$lost", "count": 1, "timeout": 10},
                {"op": "wait_events", "event": "n", "count": DROP_BEFORE + HISTORY, "timeout": 10},
            ],
            _check_gap,
            _install_expire,
        ),
        Scenario(
            "token_expired",
            f"the client connects with a {LATE_TTL} s credential and every refresh it asks "
            "for before that expires is already expired: the server closes with 4004; the "
            "client must get a fresh credential and resume (recovered: true)",
            [
                {"op": "connect", "token": {"sub": "late", "ttl": LATE_TTL, "late": 1}},
                {"op": "call", "event": "conf.exp", "data": None},
                {"op": "wait_reconnect", "timeout": 10},
                {"op": "call", "event": "conf.exp", "data": None},
                {"op": "close"},
            ],
            _check_expired,
            _install_refresh,
        ),
        Scenario(
            "reordered_frames",
            f"the server holds the next {FAULTED} frames and writes them last first: the "
            "client must see the gap, resume, and deliver every event once, in order",
            _fault_steps(),
            _check_fault("reordered frames"),
            _install_fault("reorder"),
        ),
        Scenario(
            "duplicated_frames",
            f"each of the next {FAULTED} frames is written twice in a row (same sequence "
            "number): the client must drop the copies",
            _fault_steps(),
            _check_fault("wrote frames twice"),
            _install_fault("duplicate"),
        ),
        Scenario(
            "lost_frames",
            f"the next {FAULTED} frames are taken from the outbox but never written (a lost "
            "long-poll response, a lost stretch of a stream): the client must get them "
            "again (long-poll: its next ack, section 8.4; else: the gap, then a resume)",
            _fault_steps(),
            _check_fault("lost frames"),
            _install_fault("lose"),
        ),
        Scenario(
            "drop_at_frame",
            f"the server cuts the connection (4000) right after frame {DROP_AT} of a burst: "
            "the client resumes and delivers every event once, in order",
            _fault_steps(),
            _check_fault("cut the connection at a chosen frame", resume=True),
            _install_fault("drop"),
        ),
        Scenario(
            "fallback_to_longpoll",
            "every WebSocket upgrade is refused (403) and every SSE request fails (502, as "
            "from a proxy): a client allowed all three must land on long-poll",
            [
                {"op": "connect", "transports": ["websocket", "sse", "longpoll"]},
                {"op": "call", "event": "conf.where", "data": None},
                {"op": "close"},
            ],
            _check_fallback_longpoll,
            _install_fallback,
            transports=("websocket",),
            refuse_websocket=True,
            refuse_sse=True,
        ),
        Scenario(
            "sse_buffered",
            f"SSE responses open but their bytes are held back (up to {BUFFERED}, as a "
            "buffering proxy does): a client allowed sse then long-poll, with its open "
            f"timeout set to {OPEN_TIMEOUT} s and racing off, must give up on the silent "
            "stream when the timeout runs out and land on long-poll",
            [
                {
                    "op": "connect",
                    "transports": ["sse", "longpoll"],
                    "connect_timeout": OPEN_TIMEOUT,
                    "race": False,
                },
                {"op": "call", "event": "conf.where", "data": None},
                {"op": "close"},
            ],
            _check_buffered,
            _install_fallback,
            transports=("sse",),
            buffer_sse=True,
        ),
        Scenario(
            "close_codes_40xx",
            f"a fresh connection is closed with each reconnect code in turn "
            f"({', '.join(map(str, RECONNECT_CODES))}): the client must reconnect after every one",
            _close_steps(),
            _check_reconnect_all,
            _install_close,
        ),
        Scenario(
            "close_codes_45xx",
            f"a fresh connection is closed with each terminal code in turn "
            f"({', '.join(map(str, TERMINAL_CODES))}): the client must report each and "
            "never reconnect on its own",
            _terminal_steps(),
            _check_terminal_all,
            _install_close,
            hold=1.5,
        ),
        Scenario(
            "receipts",
            f"the server emits {RECEIPTS} events, paced: the client acknowledges them by "
            "the rule negotiate advertised (rx.frames at most between receipts) and the "
            "tail of the burst within rx.ms, with nothing more received",
            [
                {"op": "collect", "event": "n"},
                {"op": "connect"},
                {"op": "call", "event": "conf.receipts", "data": {"n": RECEIPTS}},
                {"op": "wait_events", "event": "n", "count": RECEIPTS, "timeout": 10},
                {"op": "call", "event": "conf.settled", "data": None},
                {"op": "close"},
            ],
            _check_receipts,
            _install_receipts,
            alone=True,
        ),
        Scenario(
            "flood",
            f"the client makes {FLOOD} calls as fast as its API allows, against a flood "
            f"budget of {FLOOD_BURST} tokens refilled at {FLOOD_RATE:g}/s: it must pace "
            "itself (never refused) or, refused with 4008 / 429, back off and resume; "
            "either way every call acked once, processed once, in order",
            [
                {"op": "connect"},
                {"op": "flood", "event": "conf.flood", "count": FLOOD, "timeout": 8},
                {"op": "close"},
            ],
            _check_flood,
            _install_flood,
        ),
        Scenario(
            "oversized_frame",
            f"the client is asked to send a frame over max_frame_size ({OVERSIZED} bytes of "
            "data): it must refuse it before sending, with an error naming the limit, and "
            "keep its session (the server would answer 4503, terminal)",
            [
                {"op": "connect"},
                {"op": "call", "event": "conf.big", "pad": OVERSIZED},
                {"op": "call", "event": "conf.alive", "data": None},
            ],
            _check_big,
            _install_big,
            hold=1.0,
        ),
    ]
