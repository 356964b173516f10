"""The conformance server: the real Anywire app plus the control interface a client under
test polls (``GET /conformance/next``, ``POST /conformance/report``,
``GET /conformance/results``)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt

from ..core.auth import Identity
from ..core.errors import RemoteProtocolError
from ..core.settings import Settings
from ..server import Anywire, JWTAuth
from ..server.auth import AnonymousAuth
from ..server.negotiate import json_response
from ..server.observe import Connection, Observer
from ..transports.base import read_body
from .scenarios import (
    BUFFERED,
    FLOOD_BURST,
    FLOOD_RATE,
    HISTORY,
    RECEIPTS_OUTBOX,
    Scenario,
    Seen,
    scenarios,
)

TRANSPORTS = ("websocket", "sse", "longpoll")
CONTROL = "/conformance"


@dataclass
class Run:
    """One scenario on one transport, in its own namespace."""

    scenario: Scenario
    transport: str
    namespace: str
    seen: Seen = field(default_factory=Seen)
    status: str = "pending"  # pending, running, pass, fail, skipped
    reason: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    seconds: float | None = None  # from handing out to the verdict
    reported: bool = False  # the driver's report (or skip) came in

    @property
    def name(self) -> str:
        return f"{self.scenario.name}[{self.transport}]"

    @property
    def alone(self) -> bool:
        """No other run may be out meanwhile: the kit changes what every connection gets
        while this run is out (refused upgrades, a buffered stream), or its check is timed
        on the client's side (``Scenario.alone``)."""
        s = self.scenario
        return s.alone or s.refuse_websocket or s.refuse_sse or s.buffer_sse

    def instructions(self) -> dict[str, Any]:
        steps = []
        for step in self.scenario.steps:
            step = dict(step)
            if step["op"] == "connect":
                step.update(transport=self.transport, namespace=self.namespace)
                if "token" in step:  # a user of its own per run (the kit keys "late" on it)
                    sub = f"{step['token']['sub']}{self.namespace.replace('/', '-')}"
                    step["token"] = {**step["token"], "sub": sub}
            steps.append(step)
        return {
            "scenario": self.name,
            "about": self.scenario.about,
            "transport": self.transport,
            "namespace": self.namespace,
            "do": steps,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "transport": self.transport,
            "status": self.status,
            "reason": self.reason,
            "seconds": self.seconds,
        }


class _Watch(Observer):
    """Counts connections and resumes per scenario namespace."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit

    def connected(self, conn: Connection, resumed: bool) -> None:
        run = self.kit.by_namespace.get(conn.namespace)
        if run is not None:
            if resumed:
                run.seen.resumes += 1
            else:
                run.seen.connects += 1

    def disconnected(
        self, conn: Connection, code: int, duration: float, frames_in: int, frames_out: int
    ) -> None:
        run = self.kit.by_namespace.get(conn.namespace)
        if run is not None:
            run.seen.closes.append(code)

    def flood_refused(self, conn: Connection) -> None:
        run = self.kit.by_namespace.get(conn.namespace)
        if run is not None and conn.transport != "websocket":  # a WebSocket: closed_for
            run.seen.refused += 1

    def closed_for(self, reason: str, conn: Connection) -> None:
        run = self.kit.by_namespace.get(conn.namespace)
        if run is not None and reason == "flood":
            run.seen.refused += 1


class _KitAuth:
    """No credential: an anonymous guest. A credential: a JWT minted by this kit
    (``GET /conformance/token``), checked as a real server checks it."""

    def __init__(self, key: str) -> None:
        self.jwt = JWTAuth(key)
        self.anonymous = AnonymousAuth()

    def __call__(self, token: str | None, scope: Mapping[str, Any]) -> Identity:
        return self.anonymous(None, scope) if token is None else self.jwt(token, scope)


class Kit:
    """The scenarios to run, their state, and the ASGI app serving both the Anywire
    endpoints and the control interface."""

    def __init__(
        self,
        transports: tuple[str, ...] = TRANSPORTS,
        only: tuple[str, ...] = (),
        parallel: int = 1,
    ) -> None:
        table = scenarios()
        known = {s.name for s in table}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(known)}")
        bad = [t for t in transports if t not in TRANSPORTS]
        if bad or not transports:
            raise ValueError(f"transports must be among {list(TRANSPORTS)}: {bad}")
        if parallel < 1:
            raise ValueError(f"parallel must be 1 or more, not {parallel}")
        # Runs out at once at most (handed out, not yet reported), advertised in every
        # /next answer: a driver may poll /next from that many workers. A driver that
        # polls from one gets the runs one after another, as before.
        self.parallel = parallel
        # A tiny stream history, so the gap scenario can outrun it ($lost); a small flood
        # budget, so the flood scenario is short (advertised at negotiate: a paced client
        # follows it).
        self.key = secrets.token_hex(32)
        # rx_wait 1 s: the receipts scenario waits out the rule's time limit (rx.ms). An
        # outbox of 256 frames: the rule's count is 64 (a quarter of it), so the
        # scenario's burst of 202 frames spans three receipts by count.
        settings = Settings(
            stream_history=HISTORY,
            flood_rate=FLOOD_RATE,
            flood_burst=FLOOD_BURST,
            rx_wait=1.0,
            outbox_size=RECEIPTS_OUTBOX,
        )
        self.aw = Anywire(auth=_KitAuth(self.key), settings=settings)
        self.runs: list[Run] = []
        for s in table:
            if only and s.name not in only:
                continue
            for t in transports:
                if t not in s.transports:
                    continue
                ns = f"/conf{len(self.runs)}"
                run = Run(s, t, ns)
                s.install(self.aw, ns, run.seen)
                self.runs.append(run)
        self.by_namespace = {r.namespace: r for r in self.runs}
        self.aw.observers.add(_Watch(self))
        self.out: list[Run] = []  # handed out, not yet reported
        self.changed = asyncio.Condition()  # notified when a run is reported, or at close
        self.closing = False  # the kit is stopping: every waiting /next is answered done
        self.done = asyncio.Event()
        self.told_done = asyncio.Event()  # a driver was answered {"done": true}
        self._judging: set[asyncio.Task[None]] = set()
        self._late: dict[str, int] = {}  # sub -> exp of its first "late" credential

    # -- control interface ----------------------------------------------------------------

    async def next(self) -> dict[str, Any]:
        """The next run, in table order, once it may go out: at most ``parallel`` runs
        out at once, and a run that changes every connection (``Run.alone``) only with
        no other. Waits (the driver's request stays open) until then; ``{"done": true}``
        when every run was handed out."""
        async with self.changed:
            while True:
                pending = next((r for r in self.runs if r.status == "pending"), None)
                if pending is None or self.closing:
                    if not self.out:  # every report is in: this driver is finished
                        self.told_done.set()
                    return {"done": True}
                alone = pending.alone or any(r.alone for r in self.out)
                if not (self.out and alone) and len(self.out) < self.parallel:
                    break
                await self.changed.wait()
            pending.status = "running"
            pending.started = time.monotonic()
            self.out.append(pending)
            return {**pending.instructions(), "parallel": self.parallel}

    async def close(self) -> None:
        """Answer every waiting /next with done (the kit is stopping)."""
        async with self.changed:
            self.closing = True
            self.changed.notify_all()

    async def _reported(self, run: Run) -> None:
        async with self.changed:
            run.reported = True
            self.out.remove(run)
            self.changed.notify_all()

    def token(self, query: str) -> tuple[int, dict[str, Any]]:
        """A JWT for ``sub``, valid ``ttl`` seconds (1-3600). With ``late=1``: the first
        credential for ``sub`` is valid, and every one asked for before it expires is
        already expired (an in-band refresh fails, so the session meets its deadline and
        is closed with 4004); from its expiry on they are valid again."""
        q = parse_qs(query)
        sub, ttl = q.get("sub", [""])[0], q.get("ttl", ["600"])[0]
        if not sub or not (ttl.isascii() and ttl.isdigit()) or not 1 <= int(ttl) <= 3600:
            return 400, {"error": "token needs sub (non-empty) and ttl (1-3600 seconds)"}
        now = int(time.time())
        exp = now + int(ttl)
        if q.get("late", [""])[0] == "1":
            first = self._late.setdefault(sub, exp)
            if first != exp and time.time() < first:
                exp = now - 60
        claims = {"sub": sub, "iat": now, "exp": exp}
        return 200, {"token": jwt.encode(claims, self.key, algorithm="HS256")}

    async def report(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        run = next((r for r in self.runs if r.name == body.get("scenario")), None)
        if run is None or run.status != "running" or run.reported:
            return 400, {"error": f"no running scenario named {body.get('scenario')!r}"}
        if body.get("skipped"):
            run.status, run.reason = "skipped", str(body["skipped"])
            await self._reported(run)
            self._maybe_done()
            return 200, {"ok": True}
        results = body.get("results")
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            return 400, {"error": "results must be a list of objects, one per step"}
        await self._reported(run)
        # Result i answers step i: the kit notes the step's event, so checks can tell
        # two waits apart without the client echoing its instructions.
        for r, step in zip(results, run.scenario.steps, strict=False):
            r["step_event"] = step.get("event")
        run.results = results
        task = asyncio.create_task(self._judge(run, body.get("error")))
        self._judging.add(task)
        task.add_done_callback(self._judging.discard)
        return 200, {"ok": True}

    async def _judge(self, run: Run, error: Any) -> None:
        if run.scenario.hold:
            # "Must not reconnect" can only be observed over a window of time.
            await asyncio.sleep(run.scenario.hold)
        try:
            reason = run.scenario.check(run.results, run.seen)
        except Exception as exc:  # a malformed report is a failure, not a kit crash
            reason = f"malformed report: {exc!r}"
        if error and reason is None:
            reason = f"client reported an error: {error}"
        elif error:
            reason = f"{reason} (client error: {error})"
        run.status, run.reason = ("fail", reason) if reason else ("pass", "")
        run.seconds = round(time.monotonic() - run.started, 2)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if all(r.status in ("pass", "fail", "skipped") for r in self.runs):
            self.done.set()

    def results(self) -> dict[str, Any]:
        """The JSON report: per scenario status and reason, and the totals."""
        counts = {k: sum(r.status == k for r in self.runs) for k in ("pass", "fail", "skipped")}
        return {"scenarios": [r.summary() for r in self.runs], **counts, "total": len(self.runs)}

    def text(self) -> str:
        lines = []
        for r in self.runs:
            line = f"{r.status.upper():8} {r.name}"
            if r.seconds is not None:
                line += f" ({r.seconds} s)"
            if r.reason:
                line += f": {r.reason}"
            lines.append(line)
        res = self.results()
        lines.append(
            f"{res['pass']} passed, {res['fail']} failed, {res['skipped']} skipped, "
            f"{res['total'] - res['pass'] - res['fail'] - res['skipped']} not run"
        )
        return "\n".join(lines)

    # -- ASGI -------------------------------------------------------------------------------

    def _counting(self, receive: Any) -> Any:
        """``receive`` that counts the negotiate it carries in its namespace's run, once
        its body has passed (``Seen.negotiates``: the resume without negotiate
        scenario)."""
        held: list[bytes] = []

        async def counted() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                held.append(message.get("body", b""))
                if not message.get("more_body", False):
                    run = self.by_namespace.get(_namespace_of(b"".join(held)))
                    if run is not None:
                        run.seen.negotiates += 1
            return message

        return counted

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # A run that changes every connection is out alone (Kit.next): it is out[0].
        run = self.out[0] if self.out and self.out[0].alone else None
        if scope["type"] == "websocket" and run is not None and run.scenario.refuse_websocket:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if run is not None and run.scenario.refuse_sse and path.endswith("/sse"):
            # As a proxy that cannot stream would answer: the client must try long-poll.
            await _json(send, 502, {"error": "conformance: SSE refused"})
            return
        if run is not None and run.scenario.buffer_sse and path.endswith("/sse"):
            run.seen.buffered += 1
            await self.aw(scope, receive, _Buffered(send, BUFFERED))
            return
        if path.endswith("/negotiate"):
            receive = self._counting(receive)  # negotiates per scenario namespace
        if not path.startswith(CONTROL + "/"):
            await self.aw(scope, receive, send)
            return
        method, tail = scope["method"], path[len(CONTROL) :]
        if method == "GET" and tail == "/next":
            await _json(send, 200, await self.next())
        elif method == "GET" and tail == "/token":
            await _json(send, *self.token(scope.get("query_string", b"").decode()))
        elif method == "GET" and tail == "/results":
            await _json(send, 200, self.results())
        elif method == "POST" and tail == "/report":
            try:
                raw = await read_body(receive, 1_000_000)
            except RemoteProtocolError:
                await _json(send, 413, {"error": "report over 1 MB"})
                return
            except ConnectionResetError:
                return  # the driver went away mid-report
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                await _json(send, 400, {"error": f"report is not a JSON object: {exc}"})
                return
            await _json(send, *await self.report(body))
        else:
            await _json(send, 404, {"error": f"unknown control endpoint {method} {path}"})


class _Buffered:
    """An ASGI ``send`` that holds a response body back until ``limit`` bytes or its end,
    as a buffering proxy in front of an event stream would: the status and headers pass,
    the stream's padding, hello and events do not."""

    def __init__(self, send: Any, limit: int) -> None:
        self.send, self.limit = send, limit
        self.held: list[bytes] = []
        self.size = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        self.held.append(message.get("body", b""))
        self.size += len(self.held[-1])
        more = message.get("more_body", False)
        if self.size >= self.limit or not more:
            body, self.held, self.size = b"".join(self.held), [], 0
            await self.send({"type": "http.response.body", "body": body, "more_body": more})


def _namespace_of(body: bytes) -> str:
    """The namespace a negotiate body asks for ("/" when it says none or is not JSON)."""
    try:
        ns = json.loads(body or b"{}").get("ns", "/")
    except (ValueError, AttributeError):
        return "/"
    return ns if isinstance(ns, str) else "/"


async def _json(send: Any, status: int, body: dict[str, Any]) -> None:
    await json_response(send, status, body, [])
