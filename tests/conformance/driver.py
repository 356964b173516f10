"""Conformance driver for the Python client: polls ``anywire conformance`` for
instructions, follows them with the real client and reports what happened.

    python -m tests.conformance.driver http://127.0.0.1:PORT [--broken MODE]

Broken modes, as faulty clients would behave (the kit must fail the matching scenarios,
tests/conformance): ``reconnect-after-terminal`` connects again after a terminal close;
``no-refresh`` turns the client's in-band token refresh off; ``no-dedupe`` hands the
application every copy of a repeated frame (no sequence or stream-position dedupe);
``no-gap-check`` delivers a frame that skips ahead instead of resuming (frames in
between are then dropped as "old"); ``no-reconnect`` never reconnects on its own;
``stale-credential`` keeps using its first credential after it expired; ``no-pace``
turns the client's pacing off (its ``pace`` option: it then floods and is refused with
4008 / 429, and recovers or not, depending on how its backlog is split into messages);
``no-pace-no-reconnect`` floods and never comes back after the refusal;
``send-oversized`` skips the client's own size check, so a frame over
``max_frame_size`` goes to the server; ``no-fallback`` only ever tries the first
transport it was allowed; ``legacy-receipts`` ignores the receipt rule negotiate
advertises (every 16 frames, nothing for the tail of a burst); ``negotiate-every-resume``
turns the resume without negotiate off (``ws_resume=False``: conformant to a MUST, but
fails the scenario that checks this MAY, protocol section 2.2.1).

``--step-timeout S`` caps every waited step (a broken client that never satisfies a wait
then fails in S seconds, not the step's 10).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import httpx

from anywire.clients.python import Client
from anywire.core.frames import SEQUENCED, Frame


class Run:
    """One scenario's client, its recordings and its step results."""

    def __init__(self, url: str, broken: str, cap: float | None = None) -> None:
        self.url, self.broken = url, broken
        self.cap = cap  # --step-timeout: no waited step longer (a broken run fails fast)
        self.client: Client | None = None
        self.handle: list[str] = []
        self.events: dict[str, list[Any]] = {}
        self.changed = asyncio.Event()  # pulsed on every event, connect and state change
        self.connects = 0
        self.extra: Client | None = None
        self.old: list[Client] = []  # earlier clients of a scenario with several connects

    def _pulse(self, *_: Any) -> None:
        self.changed.set()

    async def _until(self, pred: Any, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while not pred():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            return bool(pred())
        return True

    def _recorder(self, into: list[Any]) -> Any:
        def record(data: Any) -> None:
            into.append(data)
            self._pulse()

        return record

    def _make(
        self,
        transports: list[str],
        namespace: str,
        token: Any = None,
        connect_timeout: float | None = None,
        race: bool = True,
    ) -> Client:
        source = None
        if token:

            first: list[str] = []

            async def source() -> str:  # a fresh credential from the kit, per use
                if first and self.broken == "stale-credential":
                    return first[0]  # broken: the first credential forever
                async with httpx.AsyncClient(base_url=self.url) as http:
                    r = await http.get("/conformance/token", params=token)
                    first.append(str(r.json()["token"]))
                    return first[-1]

        if self.broken == "no-fallback":
            transports = transports[:1]  # broken: never tries another transport
        opts: dict[str, Any] = {}
        if connect_timeout is not None:
            opts["connect_timeout"] = connect_timeout
        if not race:
            opts["race_after"] = None  # one transport at a time: only the open timeout
        c = Client(self.url, source, namespace=namespace, transports=transports, codec="json",
                   refresh=self.broken != "no-refresh",
                   reconnect=self.broken not in ("no-reconnect", "no-pace-no-reconnect"),
                   pace=self.broken not in ("no-pace", "no-pace-no-reconnect"),
                   ws_resume=self.broken != "negotiate-every-resume",
                   **opts)  # fmt: skip
        for event in self.handle:
            c.on(event)(lambda data: {"echo": data})
        for event in self.events:
            c.on(event)(self._recorder(self.events[event]))

        @c.on_connect
        def _() -> None:
            self.connects += 1
            self._pulse()

        c.on_state(self._pulse)
        if self.broken in ("no-dedupe", "no-gap-check"):
            _break(c, self.broken)
        if self.broken == "legacy-receipts":
            c.peer.set_rx_rule = lambda rule: None  # type: ignore[method-assign]
        if self.broken == "send-oversized":
            c._check_frame = lambda probe: None  # type: ignore[method-assign]
        return c

    async def step(self, s: dict[str, Any]) -> dict[str, Any]:
        if "timeout" in s and self.cap is not None:
            s = {**s, "timeout": min(s["timeout"], self.cap)}
        op = s["op"]
        out: dict[str, Any] = {"op": op}
        if op == "handle":
            self.handle.append(s["event"])
        elif op == "collect":
            self.events[s["event"]] = []
        elif op == "connect":
            transports = s.get("transports") or [s["transport"]]
            if self.client is not None:
                self.old.append(self.client)
            self.client = self._make(transports, s["namespace"], s.get("token"),
                                     s.get("connect_timeout"), s.get("race", True))  # fmt: skip
            await self.client.connect()
            out.update(sid=self.client.sid, transport=self.client.transport)
        elif op == "call":
            assert self.client is not None
            try:
                data = "x" * s["pad"] if "pad" in s else s.get("data")
                out["ack"] = await self.client.call(s["event"], data, timeout=10)
            except Exception as exc:
                out["error"] = repr(exc)
        elif op == "flood":
            assert self.client is not None
            c = self.client
            # Every call at once (as fast as the API allows): created in order, the
            # client's pacer (if any) decides when each leaves.
            calls = [c.call(s["event"], {"i": i}, timeout=s["timeout"]) for i in range(s["count"])]
            done = await asyncio.gather(*calls, return_exceptions=True)
            out["acks"] = [None if isinstance(a, BaseException) else a for a in done]
            out["errors"] = {str(i): repr(a) for i, a in enumerate(done)
                             if isinstance(a, BaseException)}  # fmt: skip
        elif op == "wait_events":
            got = self.events[s["event"]]
            await self._until(lambda: len(got) >= s["count"], s["timeout"])
            out["events"] = list(got)
        elif op == "status":
            assert self.client is not None
            out.update(recovered=self.client.recovered, sid=self.client.sid,
                       connects=self.connects)  # fmt: skip
        elif op == "wait_reconnect":
            want = s.get("count", 2)  # connections in all, the first included
            ok = await self._until(lambda: self.connects >= want, s["timeout"])
            assert self.client is not None
            out.update(reconnected=ok, recovered=self.client.recovered, sid=self.client.sid)
        elif op == "wait_refreshed":
            r = self.client.refresher if self.client else None
            ok = False
            # The client has no refresh hook to wake on: look at its counter (bounded).
            for _ in range(int(s["timeout"] / 0.05)):
                if ok := r is not None and r.refreshed >= 1:
                    break
                await asyncio.sleep(0.05)
            out.update(refreshed=r.refreshed if r else 0, ok=ok)
        elif op == "wait_closed":
            c = self.client
            assert c is not None
            ok = await self._until(lambda: c.state == "disconnected", s["timeout"])
            out.update(closed=ok, code=c.last_close[0] if c.last_close else None)
            if ok and self.broken == "reconnect-after-terminal":
                if self.extra is not None:
                    self.old.append(self.extra)
                self.extra = self._make(list(c.transports), c.namespace)
                await self.extra.connect()
        elif op == "close":
            assert self.client is not None
            await self.client.close()
        else:
            out["error"] = f"unknown op {op!r}"
        return out

    async def aclose(self) -> None:
        for c in (*self.old, self.client, self.extra):
            if c is not None:
                await c.close()


def _break(c: Client, mode: str) -> None:
    """Turn off the client's dedupe (``no-dedupe``) or its gap check (``no-gap-check``),
    on this client's own peer, as a faulty implementation would have it."""
    peer, receive = c.peer, c.peer.receive

    def faulty(frame: Frame) -> Frame | None:
        if frame.type in SEQUENCED:
            s = frame.s  # type: ignore[union-attr]
            if mode == "no-dedupe" and s <= peer.in_last:
                return frame  # a copy goes to the application again
            if mode == "no-gap-check" and s > peer.in_last + 1:
                peer.in_last = s  # skip ahead: what lies between counts as old
                return frame
        return receive(frame)

    peer.receive = faulty  # type: ignore[method-assign]
    if mode == "no-dedupe":
        c.continuity.accept = lambda event: True  # type: ignore[method-assign]


async def main(url: str, broken: str, cap: float | None = None) -> int:
    # /next may wait for a free slot (the kit's --parallel): no read timeout on it.
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        first = (await http.get("/conformance/next", timeout=None)).json()
        # As many workers as the kit lets runs out at once (1 unless it says otherwise).
        more = 0 if first.get("done") else int(first.get("parallel", 1)) - 1
        await asyncio.gather(_worker(http, url, broken, cap, first),
                             *(_worker(http, url, broken, cap) for _ in range(more)))  # fmt: skip
    return 0


async def _worker(
    http: httpx.AsyncClient, url: str, broken: str, cap: float | None, todo: Any = None
) -> None:
    """Runs scenarios one after another until the kit says done."""
    while True:
        if todo is None:
            todo = (await http.get("/conformance/next", timeout=None)).json()
        if todo.get("done"):
            return
        run, results, error = Run(url, broken, cap), [], None
        try:
            for s in todo["do"]:
                results.append(await run.step(s))
        except Exception as exc:
            error = repr(exc)
        finally:
            await run.aclose()
        report = {"scenario": todo["scenario"], "results": results, "error": error}
        r = await http.post("/conformance/report", json=report)
        r.raise_for_status()
        todo = None


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("url")
    modes = ["", "reconnect-after-terminal", "no-refresh", "no-dedupe", "no-gap-check",
             "no-reconnect", "stale-credential", "no-pace", "no-pace-no-reconnect",
             "send-oversized", "no-fallback", "legacy-receipts",
             "negotiate-every-resume"]  # fmt: skip
    p.add_argument("--broken", default="", choices=modes)
    p.add_argument("--step-timeout", type=float, default=None,
                   help="cap every waited step's timeout (seconds)")  # fmt: skip
    a = p.parse_args()
    sys.exit(asyncio.run(main(a.url, a.broken, a.step_timeout)))
