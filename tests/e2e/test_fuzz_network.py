"""Network fuzz (issue #13, "Fuzzing"): random and mutated frames (mutations of the golden
vectors in tests/vectors) thrown at a live server over each transport, in both codecs,
plus mangled opening requests, query strings, headers and negotiate bodies, while a
well-behaved client keeps making echo round trips on the same transport.

Asserted: every echo round trip succeeds, in order, with its own data (nothing lost);
no HTTP answer is a 5xx other than a JSON 503, and every error answer is JSON; no
WebSocket is closed as our failure (1011, 4003); the server logs no traceback. At least
``AW_FUZZ_INPUTS`` (5,000) inputs per transport; the count and rate are printed (``-s``).
The seed is printed too and ``AW_FUZZ_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import websockets

from .conftest import Server, make_token, start_server
from .raw import RawConn

INPUTS = int(os.environ.get("AW_FUZZ_INPUTS", "5000"))
# A run that stops making progress fails rather than hangs: STALL seconds with no input
# answered. INPUTS is the bound, not a time: a loaded machine answers fewer inputs a second
# (sse and long-poll, one POST each: 170/s at load 4, 32-44/s at load 12), and a time cap
# of 60 s failed those runs with 1,900-2,900 inputs answered and nothing wrong. The test's
# timeout (TIMEOUT) is sized for such a machine: 5,000 inputs at 12.5/s.
STALL = 30.0
TIMEOUT = 400
VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "frames.json").read_text())
GOLDEN = [(v["json"].encode(), bytes.fromhex(v["msgpack"])) for v in VECTORS]
OK_STATUS = {200, 204, 400, 401, 403, 404, 405, 410, 413, 429, 503}
MARKER = re.compile(rb"fz-window-([0-9]+)")
OUR_FAILURE = {1011, 4003}  # close codes that mean the server broke (INTERNAL_ERROR), not the input


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Server]:
    # The testapp's limits (16 KB frames, 2,000 frames/s): the fuzzer stays inside the
    # flood budget, so what is measured is the server's handling of bad input.
    srv = start_server({})
    yield srv
    srv.stop()


# -- inputs ---------------------------------------------------------------------------------
EDGE_INTS = [0, 1, -1, 2**31, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
             -(2**63) - 1, 10**30]  # fmt: skip
FIELDS = ["t", "s", "id", "e", "d", "r", "o", "ok", "err", "n", "meta", "since", "ticket",
          "last", "sid", "recovered", "seq", "streams", "c", "m", "code", "message",
          "token"]  # fmt: skip
TYPES = ["event", "ack", "join", "leave", "rx", "ping", "pong", "close", "error", "connect",
         "resume", "hello", "auth", "EVENT", ""]  # fmt: skip


class Inputs:
    """Random messages: golden vectors mutated, random structures, raw bytes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.randrange(10 if depth < 4 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return r.choice([True, False])
        if kind == 2:
            return r.choice(EDGE_INTS) * r.choice([1, -1])
        if kind == 3:
            return r.choice([0.5, -1e300, 1e-300, 3.14])
        if kind == 4:
            return "".join(r.choice("ab$é\u2028\x00\\\"{[") for _ in range(r.randrange(8)))
        if kind == 5:
            return r.randrange(-5, 2**20)
        if kind in (6, 7):
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        keys = [*FIELDS, "$bin", "x"]
        return {r.choice(keys): self.value(depth + 1) for _ in range(r.randrange(4))}

    def frame(self) -> dict[str, Any]:
        r = self.rng
        out: dict[str, Any] = {"t": r.choice(TYPES) if r.random() < 0.9 else self.value()}
        for key in r.sample(FIELDS[1:], r.randrange(6)):
            out[key] = self.value()
        # Events named after the test app's handlers would run them with nonsense data;
        # their failures are the application's (logged with a traceback by design).
        if isinstance(out.get("e"), str):
            out["e"] = "fz-" + out["e"]
        return out

    def encoded(self, binary: bool) -> bytes:
        r = self.rng
        obj: Any = self.frame()
        if r.random() < 0.2:  # a batch
            obj = [self.frame() for _ in range(r.randrange(5))]
        if binary:
            try:
                return bytes(msgpack.packb(obj, use_bin_type=True))
            except (OverflowError, ValueError, TypeError):
                return b"\xc1"
        return json.dumps(obj, allow_nan=True).encode()  # NaN and 2^64 on purpose

    def mutated(self, binary: bool) -> bytes:
        r = self.rng
        data = bytearray(r.choice(GOLDEN)[1 if binary else 0])
        for _ in range(r.randrange(1, 5)):
            op = r.randrange(6)
            at = r.randrange(len(data) + 1)
            if op == 0 and data:
                data[at % len(data)] ^= 1 << r.randrange(8)
            elif op == 1:
                data[at:at] = bytes([r.randrange(256)])
            elif op == 2 and data:
                del data[at % len(data)]
            elif op == 3:
                del data[at:]
            elif op == 4:  # splice in a piece of another vector
                other = r.choice(GOLDEN)[1 if binary else 0]
                start = r.randrange(len(other))
                data[at:at] = other[start : start + r.randrange(1, 12)]
            elif op == 5 and data:
                data[at % len(data)] = r.choice(b"[]{}\",:0123456789\x90\x80\xc0\xcb\xdc")
        return bytes(data)

    def message(self, binary: bool) -> bytes:
        r = self.rng
        roll = r.random()
        if roll < 0.45:
            return self.mutated(binary)
        if roll < 0.85:
            return self.encoded(binary)
        if roll < 0.9:
            depth = r.randrange(20, 3000)
            return b"[" * depth + b"]" * depth if not binary else b"\x91" * depth + b"\xc0"
        if roll < 0.95:
            return bytes(r.randrange(256) for _ in range(r.randrange(40)))
        unchanged = r.choice(GOLDEN)[1 if binary else 0]  # valid frames, any numbering
        return unchanged


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _bytes(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


# -- the fuzzer ---------------------------------------------------------------------------
class Fuzzer:
    """Sends inputs over one transport, opening a new session whenever one ends."""

    def __init__(self, server: Server, transport: str, rng: random.Random) -> None:
        self.server = server
        self.transport = transport
        self.rng = rng
        self.inputs = Inputs(rng)
        self.count = 0
        self.sessions = 0
        self.windows = 0
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)
        self.statuses: dict[int, int] = {}
        self.closes: dict[int, int] = {}
        self.problems: list[str] = []
        self.token = make_token(f"fuzz-{transport}")
        self.progress = time.monotonic()  # when an input was last answered

    def going(self) -> bool:
        """Inputs still to send, and the server still answering (STALL)."""
        return self.count < INPUTS and time.monotonic() - self.progress < STALL

    def answered(self, inputs: int = 0) -> None:
        """``inputs`` more were answered (0: one counted when sent was)."""
        self.count += inputs
        self.progress = time.monotonic()

    def _answer(self, r: httpx.Response, what: str) -> None:
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code not in OK_STATUS:
            self.problems.append(f"{what}: status {r.status_code} {r.text[:200]!r}")
        elif r.status_code >= 400 and not r.headers.get("content-type", "").startswith(
            "application/json"
        ):
            self.problems.append(f"{what}: {r.status_code} not JSON: {r.text[:200]!r}")

    def _well_formed(self, message: str | bytes, binary: bool) -> Any:
        """What the server sent, decoded: it must be a frame or a batch in the codec."""
        try:
            obj = msgpack.unpackb(message) if binary else json.loads(message)
        except ValueError as exc:
            self.problems.append(f"server sent undecodable {message[:100]!r}: {exc}")
            return None
        frames = obj if isinstance(obj, list) else [obj]
        if not all(isinstance(f, dict) and "t" in f for f in frames):
            self.problems.append(f"server sent something not a frame: {message[:100]!r}")
        return obj

    def _closed(self, code: int | None) -> None:
        code = -1 if code is None else code
        self.closes[code] = self.closes.get(code, 0) + 1
        if code in OUR_FAILURE:
            self.problems.append(f"websocket closed {code}")

    async def negotiate(self, codec: str) -> dict[str, Any]:
        for _ in range(50):
            r = await self.http.post(
                "/anywire/negotiate",
                json={"codecs": [codec], "transports": [self.transport]},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            self._answer(r, "negotiate")
            if r.status_code == 200:
                self.sessions += 1
                return dict(r.json())
            # Refused for now (a per-IP negotiate budget): wait as told, bounded.
            await asyncio.sleep(min(float(r.headers.get("retry-after", "0.2")), 2.0))
        raise AssertionError(f"negotiate kept failing: {self.statuses}")

    async def side_input(self) -> None:
        """Now and then, not a frame: a mangled negotiate body, opening request, query
        string or header."""
        r_ = self.rng
        roll = r_.random()
        if roll < 0.3:
            body = self.inputs.message(False)
            r = await self.http.post("/anywire/negotiate", content=body,
                                     headers={"content-type": "application/json"})  # fmt: skip
            self._answer(r, "negotiate body")
        elif self.transport == "websocket":
            url = self.server.url.replace("http", "ws") + "/anywire/ws"
            async with websockets.connect(url, max_size=None) as ws:
                first = self.inputs.message(r_.random() < 0.5)
                await ws.send(first if r_.random() < 0.5 else _text(first))
                with contextlib.suppress(websockets.ConnectionClosed):
                    async with asyncio.timeout(5):
                        while True:
                            await ws.recv()
            self._closed(ws.close_code)
        else:
            path = r_.choice(["/anywire/poll", "/anywire/sse", "/anywire/send"])
            names = ["ticket", "last", "ack", "token", "x"]
            params = {
                r_.choice(names): _text(self.inputs.message(False))[:80]
                for _ in range(r_.randrange(1, 4))
            }
            # Any bytes a header may hold (no control characters), up to 80.
            token = bytes(b for b in self.inputs.message(False) if b >= 32 and b != 127)[:80]
            ctype = r_.choice(["application/msgpack", "text/plain", "x"])
            headers = {"X-Anywire-Token": token.strip() or b"t", "Content-Type": ctype}
            if path == "/anywire/send":
                r = await self.http.post(path, params=params, headers=headers,
                                         content=self.inputs.message(False))  # fmt: skip
            else:
                async with self.http.stream("GET", path, params=params, headers=headers) as r:
                    if r.status_code == 200:  # a real stream: enough, close it
                        self.statuses[200] = self.statuses.get(200, 0) + 1
                        return
                    await r.aread()
            self._answer(r, f"{path} {params!r:.80}")
        self.answered(1)

    async def run(self) -> None:
        while self.going():
            codec = self.rng.choice(["json", "msgpack"])
            if self.transport == "websocket":
                await self._websocket(codec)
            else:
                await self._http_session(codec)
        await self.http.aclose()

    async def _websocket(self, codec: str) -> None:
        neg = await self.negotiate(codec)
        binary = neg["codec"] == "msgpack"
        url = self.server.url.replace("http", "ws") + "/anywire/ws"
        async with websockets.connect(url, max_size=None) as ws:
            first = {"t": "connect", "ticket": neg["ticket"]}
            await ws.send(msgpack.packb(first) if binary else json.dumps(first))

            seen: dict[int, asyncio.Event] = {}

            async def drain() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for message in ws:
                        self._well_formed(message, binary)
                        for number in MARKER.findall(_bytes(message)):
                            seen.setdefault(int(number), asyncio.Event()).set()

            reader = asyncio.create_task(drain())
            try:
                while self.going() and not reader.done():
                    if self.rng.random() < 0.05:
                        await self.side_input()
                        continue
                    # A window of inputs, then a marker: a frame of an unknown type the
                    # server names in its error frame, so its answer says that everything
                    # before it was processed. Only windows so confirmed are counted
                    # (inputs sent after one that ended the connection never were).
                    window = 20
                    self.windows += 1
                    marker = {"t": f"fz-window-{self.windows}"}
                    try:
                        for _ in range(window):
                            data = self.inputs.message(binary)
                            # Mostly the connection's own kind of message, now and then
                            # the other.
                            as_binary = binary if self.rng.random() < 0.9 else not binary
                            await ws.send(data if as_binary else _text(data))
                        await ws.send(msgpack.packb(marker) if binary else json.dumps(marker))
                    except websockets.ConnectionClosed:
                        break
                    confirmed = asyncio.ensure_future(
                        seen.setdefault(self.windows, asyncio.Event()).wait()
                    )
                    await asyncio.wait([reader, confirmed], timeout=10,
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                    if not confirmed.done():
                        confirmed.cancel()
                        break
                    self.answered(window + 1)
            finally:
                with contextlib.suppress(Exception):
                    await ws.close()
                await reader
        self._closed(ws.close_code)

    async def _http_session(self, codec: str) -> None:
        neg = await self.negotiate("json")  # downstream JSON; upstream bodies in either codec
        token, ticket = neg["token"], neg["ticket"]
        path = "/anywire/sse" if self.transport == "sse" else "/anywire/poll"
        ended = asyncio.Event()

        async def downstream() -> None:
            last, params = 0, {"ticket": ticket}
            headers: dict[str, str] = {}
            try:
                while True:
                    if self.transport == "sse":
                        async with self.http.stream("GET", path, params=params) as r:
                            if r.status_code != 200:
                                await r.aread()
                                self._answer(r, "GET /sse")
                                return
                            async for line in r.aiter_lines():
                                if line.startswith("data:"):
                                    self._well_formed(line[5:], False)
                        return
                    r = await self.http.get(path, params=params, headers=headers)
                    if r.status_code not in (200, 204):
                        self._answer(r, "GET /poll")
                        return
                    frames = self._well_formed(r.content, False) if r.status_code == 200 else []
                    for f in frames if isinstance(frames, list) else []:
                        if isinstance(f, dict) and f.get("t") in ("event", "ack"):
                            last = max(last, f["s"])
                        if isinstance(f, dict) and f.get("t") == "close":
                            return
                    params, headers = {"ack": str(last)}, {"X-Anywire-Token": token}
            except httpx.HTTPError:
                return
            finally:
                ended.set()

        poller = asyncio.create_task(downstream())
        try:
            in_flight: set[asyncio.Task[None]] = set()
            while self.going() and not ended.is_set():
                if self.rng.random() < 0.01:
                    await self.side_input()
                    continue
                binary = self.rng.random() < (0.8 if codec == "msgpack" else 0.2)
                body = self.inputs.message(binary)
                ctype = "application/msgpack" if binary else "application/json"
                task = asyncio.create_task(self._post(token, body, ctype, ended))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                self.count += 1
                if len(in_flight) >= 4:  # a few POSTs in flight, as a hostile client would
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            if in_flight:
                await asyncio.wait(in_flight)
        finally:
            poller.cancel()
            with contextlib.suppress(BaseException):
                await poller

    async def _post(self, token: str, body: bytes, ctype: str, ended: asyncio.Event) -> None:
        r = await self.http.post(
            "/anywire/send", content=body,
            headers={"X-Anywire-Token": token, "Content-Type": ctype},
        )  # fmt: skip
        self._answer(r, f"POST /send {body[:60]!r}")
        self.answered()
        if r.status_code not in (204, 400, 413):
            ended.set()  # the session ended (a close frame, a flood): open another


# -- the well-behaved client -------------------------------------------------------------------
async def _bystander(server: Server, transport: str, stop: asyncio.Event) -> int:
    """Echo round trips one after another until ``stop``; each must come back whole."""
    conn = RawConn(server.url, transport, make_token(f"bystander-{transport}"))
    done = 0
    try:
        await conn.open()
        s = 0
        while not stop.is_set():
            s += 1
            payload = {"n": s, "text": f"round trip {s}"}
            await conn.send({"t": "event", "s": s, "id": s, "e": "echo", "d": payload})
            while True:
                frame = await conn.recv(timeout=10)
                assert frame.get("t") not in ("close", "_closed", "_http", "error"), frame
                if frame.get("t") == "ack":
                    break
            assert frame["id"] == s and frame["ok"] is True and frame["d"] == payload, frame
            done += 1
            if transport != "websocket" and done % 16 == 0:
                await conn.send({"t": "rx", "n": conn.last_seq})
    finally:
        await conn.close()
    return done


@pytest.mark.timeout(TIMEOUT)
async def test_fuzzed_frames_never_break_the_server_or_a_bystander(
    fuzz_server: Server, transport: str
) -> None:
    seed = int(os.environ.get("AW_FUZZ_SEED", str(random.randrange(2**32))))
    rng = random.Random(f"{seed}-{transport}")
    start_log = fuzz_server.log.stat().st_size
    stop = asyncio.Event()
    bystander = asyncio.create_task(_bystander(fuzz_server, transport, stop))
    fuzzer = Fuzzer(fuzz_server, transport, rng)
    started = time.monotonic()
    try:
        await fuzzer.run()
    finally:
        stop.set()
    round_trips = await bystander
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz {transport}: {fuzzer.count} inputs in {elapsed:.1f} s "
        f"({fuzzer.count / elapsed:.0f}/s, seed {seed}), {fuzzer.sessions} sessions, "
        f"bystander {round_trips} echo round trips; "
        f"HTTP statuses {dict(sorted(fuzzer.statuses.items()))}; "
        f"WebSocket closes {dict(sorted(fuzzer.closes.items()))}"
    )
    assert not fuzzer.problems, "\n".join(fuzzer.problems[:20])
    assert fuzzer.count >= INPUTS, (
        f"stalled: only {fuzzer.count} inputs, none answered in the last {STALL} s (seed {seed})"
    )
    assert round_trips >= 10, round_trips
    log = fuzz_server.log.read_bytes()[start_log:].decode(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 500 :][:4000]
    assert fuzz_server.proc.poll() is None
