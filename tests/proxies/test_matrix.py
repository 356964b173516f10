"""The restrictive-network matrix (issue #16): one cell per intermediary condition, the
Python client connecting with its default transport list (the negotiator and racing choose).

Per cell the client sends ``SENT`` events upstream (recorded by the server) and receives
``BURST`` server events, and the row records what was delivered, the duplicates, the
transport chosen, the time to the first message and the reconnects. Every row asserts full
delivery, no duplicates, the expected transport and the first message within 1 s.

Each row is also appended, as one JSON line, to ``$ANYWIRE_MATRIX_RESULTS`` (or to
``matrix.jsonl`` in pytest's base temporary directory): ``python3 -m
tests.proxies.matrix_table`` runs this module and rewrites the table in docs/browser.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.sync_api import Browser, BrowserContext, Page

from anywire.clients.python import Client
from tests.browser.conftest import APP, chromium, load
from tests.browser.drive import js, wait, wait_events
from tests.e2e.conftest import Server, make_token, spawn_server, start_servers
from tests.netfault import FaultProxy

from .nginx import PROXY_TEST_SERVER, Nginx, start_nginx
from .squid import Squid, start_squid

FIRST_MESSAGE = 1.0  # the target, seconds
SENT = 50  # events the client sends (recorded by the server)
BURST = 50  # events the server sends the client
IDLE_CUT = 2.0  # the FaultProxy cell's idle timeout, seconds
PING_TIMEOUT = 2.0  # the half-open cell's server setting


@dataclass(frozen=True)
class Cell:
    name: str
    site: str  # the intermediary (a key of World.urls)
    what: str  # the condition, for the table
    expect: str  # the transport the client must land on
    transports: tuple[str, ...] | None = None  # None: the client's default list
    reconnects: tuple[int, int] = (0, 0)  # how many the condition may cost, at least/most


BUFFERED = "nginx buffering + gzip on the stream (HTTP/1.0 upstream)"
HALF_OPEN = "path black-holed after connect, then restored"
# Two cuts that agree teach the client its shorter heartbeat; a third is tolerated (a cut
# racing the new negotiate), more is churn.
IDLE_RECONNECTS = (2, 3)
ONE = (1, 1)  # a half-open path costs exactly the one reconnect that finds it
IDLE = f"TCP cut after {IDLE_CUT:g} s idle (heartbeat 20 s)"
CELLS = (
    Cell("plain", "plain", "direct, nothing in between", "websocket"),
    Cell("nginx-ws-blocked", "nginx-ws-blocked", "nginx stripping Upgrade", "sse"),
    Cell("nginx-buffering", "nginx-buffering", BUFFERED, "websocket"),
    Cell("nginx-buffering-no-ws", "nginx-buffering", BUFFERED, "longpoll", ("sse", "longpoll")),
    Cell(
        "nginx-short-idle",
        "nginx-short-idle",
        "nginx: upstream idle 5 s (heartbeat 1 s)",
        "websocket",
    ),
    Cell("ws-black-hole", "ws-black-hole", "101 Switching Protocols, then nothing", "sse"),
    Cell("sse-held", "sse-held", "Upgrade refused, SSE first chunk held back", "longpoll"),
    Cell("squid", "squid", "Debian squid, default rules (CONNECT only to 443)", "sse"),
    Cell("half-open", "half-open", HALF_OPEN, "websocket", reconnects=ONE),
    Cell("half-open-sse", "half-open", HALF_OPEN, "sse", ("sse",), ONE),
    Cell("half-open-longpoll", "half-open", HALF_OPEN, "longpoll", ("longpoll",), ONE),
    Cell("idle-cut", "idle-cut", IDLE, "websocket", reconnects=IDLE_RECONNECTS),
    Cell("idle-cut-sse", "idle-cut", IDLE, "sse", ("sse",), IDLE_RECONNECTS),
    Cell("idle-cut-longpoll", "idle-cut", IDLE, "longpoll", ("longpoll",), IDLE_RECONNECTS),
)


@dataclass
class World:
    """Every server and intermediary the cells need, started once for the module."""

    urls: dict[str, str]
    halfopen: dict[str, FaultProxy]  # a proxy per half-open cell: they run side by side
    idlecut: FaultProxy
    proxies: dict[str, str]  # a site reached through a forward proxy: its address


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    servers: list[Server] = []
    proxies: list[Nginx] = []
    faults: list[FaultProxy] = []
    squid: Squid | None = None
    try:
        # The five servers spawned side by side (their start-up overlaps on the cores).
        servers += start_servers([
            spawn_server(PROXY_TEST_SERVER, app=APP),  # plain: heartbeat 1 s, poll window 3 s
            spawn_server({"AW_BREAK": "websocket-silent"}, app=APP),  # ws-black-hole
            spawn_server({"AW_BREAK": "websocket,sse-silent"}, app=APP),  # sse-held
            # Half-open: a long heartbeat and poll window so only the send's missing ack
            # notices.
            spawn_server({
                "AW_PING_INTERVAL": "20",
                "AW_PING_TIMEOUT": str(PING_TIMEOUT),
                "AW_POLL_WINDOW": "20",
                "AW_RESUME_WINDOW": "30",
            }, app=APP),
            # Idle cut: the heartbeat is far longer than the cut; the client adapts it.
            spawn_server({
                "AW_PING_INTERVAL": "20",
                "AW_PING_TIMEOUT": "5",
                "AW_MIN_PING_INTERVAL": "0.5",
                "AW_POLL_WINDOW": "20",
                "AW_RESUME_WINDOW": "30",
            }, app=APP),
        ])  # fmt: skip
        plain, black_hole, held, half_open, idle_cut = servers
        urls = {"plain": plain.url}
        for cell, conf in (
            ("nginx-ws-blocked", "ws-blocked"),
            ("nginx-buffering", "buffering"),
            ("nginx-short-idle", "short-idle"),
        ):
            proxies.append(start_nginx(conf, plain.port))
            urls[cell] = proxies[-1].url
        squid = start_squid()  # a forward proxy: the client is told to use it
        urls["squid"] = plain.url
        urls["ws-black-hole"], urls["sse-held"] = black_hole.url, held.url
        halfopen: dict[str, FaultProxy] = {}
        for c in CELLS:
            if c.site == "half-open":
                faults.append(FaultProxy(half_open.port))
                halfopen[c.name] = faults[-1]
        faults.append(FaultProxy(idle_cut.port, idle_cut=IDLE_CUT))
        urls["idle-cut"] = faults[-1].url
        yield World(urls, halfopen, faults[-1], {"squid": squid.url})
    finally:
        if squid is not None:
            squid.stop()
        for f in faults:
            f.close()
        for p in proxies:
            p.stop()
        for s in servers:
            s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module's JS cells."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("ANYWIRE_MATRIX_RESULTS")
    return Path(env) if env else tmp_path_factory.getbasetemp() / "matrix.jsonl"


async def _wait(pred: Callable[[], bool], changed: asyncio.Event, within: float) -> None:
    async with asyncio.timeout(within):
        while not pred():
            changed.clear()
            await changed.wait()


def _url(world: World, cell: Cell) -> str:
    proxy = world.halfopen.get(cell.name)
    return proxy.url if proxy is not None else world.urls[cell.site]


async def _half_open(
    world: World, cell: Cell, client: Client, states: list[str], changed: asyncio.Event
) -> None:
    """Black-hole the path, send into it, and restore it once the client noticed."""
    mark = len(states)
    world.halfopen[cell.name].set("blackhole")
    await client.emit("record", "lost-in-the-hole")  # must be resent after the resume
    await _wait(lambda: "reconnecting" in states[mark:], changed, PING_TIMEOUT + 3)
    world.halfopen[cell.name].set("forward")
    await _wait(lambda: states[-1] == "connected", changed, 15)


async def _idle_cut(
    world: World, cell: Cell, client: Client, states: list[str], changed: asyncio.Event
) -> None:
    """Stay idle until the client has asked for a heartbeat shorter than the cut (bounded),
    then through a quiet window of 2.5 cut periods."""
    async with asyncio.timeout(6 * IDLE_CUT + 4):
        while client.stats["ping_interval_ms"] >= IDLE_CUT * 1000 or client.state != "connected":
            changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await changed.wait()
    await asyncio.sleep(2.5 * IDLE_CUT)  # the condition under test is idleness itself


Middle = Callable[[World, Cell, Client, list[str], asyncio.Event], Awaitable[None]]
MIDDLE: dict[str, Middle] = {
    "half-open": _half_open,
    "idle-cut": _idle_cut,
}


def _write(results: Path, row: dict[str, Any]) -> None:
    with results.open("a") as out:
        out.write(json.dumps(row) + "\n")
    print(f"\n{row}")


@dataclass
class PyOutcome:
    """What one Python cell measured, for the test to record and assert."""

    row: dict[str, Any]
    sent: list[int]
    recorded: list[Any]
    got: list[int]
    chosen: str | None
    first: float
    states: list[str]
    fallback: tuple[list[str], list[str]]  # the client's failed and lost transports


async def _run_python_cell(world: World, cell: Cell) -> PyOutcome:
    user = f"matrix-py-{cell.name}-{time.monotonic_ns()}"
    kwargs: dict[str, Any] = {"transports": cell.transports} if cell.transports else {}
    if cell.site in world.proxies:
        kwargs["proxy"] = world.proxies[cell.site]
    client = Client(
        _url(world, cell),
        token=make_token(user),
        backoff_base=0.05,
        backoff_max=0.2,
        **kwargs,
    )
    states: list[str] = []
    changed = asyncio.Event()
    got: list[int] = []
    burst_done = asyncio.Event()

    @client.on_state
    def _state(state: str) -> None:
        states.append(state)
        changed.set()

    @client.on("n")
    def _n(i: int) -> None:
        got.append(i)
        if len(set(got)) >= BURST:
            burst_done.set()

    start = time.monotonic()
    await client.connect()
    try:
        assert await client.call("echo", "first") == "first"
        first = time.monotonic() - start
        chosen = client.transport
        half = SENT // 2
        for i in range(half):
            await client.emit("record", i)
        middle = MIDDLE.get(cell.site)
        if middle is not None:
            await middle(world, cell, client, states, changed)
        for i in range(half, SENT):
            await client.emit("record", i)
        recorded = await client.call("recorded", timeout=15)
        sent = [x for x in recorded if isinstance(x, int)]
        await client.emit("burst", {"n": BURST})
        async with asyncio.timeout(15):
            await burst_done.wait()
        row: dict[str, Any] = {
            "client": "python",
            "cell": cell.name,
            "what": cell.what,
            "offered": ",".join(cell.transports) if cell.transports else "default",
            "expect": cell.expect,
            "transport": chosen,
            "final_transport": client.transport,
            "first_message_ms": round(first * 1000),
            "sent_delivered": len(sent),
            "sent": SENT,
            "received": len(set(got)),
            "burst": BURST,
            "duplicates": (len(sent) - len(set(sent)))
            + (len(got) - len(set(got)))
            + client.stats["duplicates"],
            "reconnects": states.count("reconnecting"),
            "idle_cuts": client.stats["idle_cuts"],
            "ping_interval_ms": client.stats["ping_interval_ms"],
        }
        fallback = (list(client.fallback.failed), list(client.fallback.lost))
        return PyOutcome(row, sent, recorded, got, chosen, first, list(states), fallback)
    finally:
        await client.close()


TOGETHER = ("idle-cut", "half-open")  # sites whose cells run side by side


class SiteRuns:
    """The Python runs of a site's cells (TOGETHER), started together when the first of
    them comes up (so they do not run beside the other cells); each client has its own
    user. Idle cut: each is an idle wait of ~10 s through the same idle-cutting proxy,
    which cuts each connection on its own. Half-open: each black-holes a proxy of its own
    (World.halfopen). One window instead of three."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.tasks: dict[str, asyncio.Task[PyOutcome]] = {}

    def get(self, cell: Cell) -> asyncio.Task[PyOutcome]:
        if cell.name not in self.tasks:
            for c in CELLS:
                if c.site == cell.site:
                    self.tasks[c.name] = asyncio.ensure_future(_run_python_cell(self.world, c))
        return self.tasks[cell.name]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site_runs(world: World) -> AsyncIterator[SiteRuns]:
    runs = SiteRuns(world)
    yield runs
    for task in runs.tasks.values():
        task.cancel()
    await asyncio.gather(*runs.tasks.values(), return_exceptions=True)


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
@pytest.mark.asyncio(loop_scope="module")
async def test_cell_python(world: World, results: Path, site_runs: SiteRuns, cell: Cell) -> None:
    if cell.site in TOGETHER:
        out = await asyncio.wait_for(site_runs.get(cell), 60)
    else:
        out = await _run_python_cell(world, cell)
    row = out.row
    _write(results, row)
    assert out.sent == list(range(SENT)), out.sent
    if cell.site == "half-open":
        assert out.recorded.count("lost-in-the-hole") == 1, out.recorded
    assert sorted(out.got) == list(range(BURST)), out.got
    assert row["duplicates"] == 0
    assert out.chosen == cell.expect, (out.chosen, *out.fallback)
    assert out.first < FIRST_MESSAGE, out.first
    lo, hi = cell.reconnects
    assert lo <= row["reconnects"] <= hi, (row["reconnects"], out.states)


TIMED_OPEN = """(async () => {
  const t0 = performance.now();
  h.open('m', arg.sub, arg.options, ['n']);
  await h.socket('m').ready();
  const echo = await h.call('m', 'echo', 'first');
  return [performance.now() - t0, echo, h.socket('m').transport];
})()"""
STATE = "h.s.m.states"


# Runs in an idle-cut cell's page: the moment its socket is first connected with a
# heartbeat shorter than the cut (polled every 20 ms, like a wait would).
WATCH_SETTLING = """(() => {
  const timer = setInterval(() => {
    const socket = h.socket('m');
    if (socket.state !== 'connected' || socket.stats.pingInterval >= arg) return;
    window.settledAt = performance.now();
    clearInterval(timer);
  }, 20);
  return true;
})()"""


@dataclass
class JsCell:
    """A JS cell's page, opened and through the first half of its sends."""

    context: BrowserContext
    page: Page
    first_ms: float
    echo: object
    chosen: str


def _open_js_cell(browser: Browser, world: World, cell: Cell) -> JsCell:
    user = f"matrix-js-{cell.name}-{time.monotonic_ns()}"
    options: dict[str, Any] = {"backoffBase": 50, "backoffMax": 200, "upgrade": False}
    if cell.transports:
        options["transports"] = list(cell.transports)
    via = world.proxies.get(cell.site)
    # "<-loopback>": Chromium would otherwise never proxy 127.0.0.1.
    context = (
        browser.new_context(proxy={"server": via, "bypass": "<-loopback>"})
        if via
        else browser.new_context()
    )
    try:
        page = load(context, _url(world, cell))
        first_ms, echo, chosen = js(page, TIMED_OPEN, {"sub": user, "options": options})
        for i in range(SENT // 2):
            js(page, "h.emit('m', 'record', arg)", i)
        if cell.site == "idle-cut":
            js(page, WATCH_SETTLING, IDLE_CUT * 1000)
    except BaseException:
        context.close()
        raise
    return JsCell(context, page, first_ms, echo, chosen)


def _half_open_pages(world: World, group: list[tuple[Cell, JsCell]]) -> None:
    """Per page (its own proxy): black-hole the path and send into it; then, for each,
    restore the path once the page noticed, within PING_TIMEOUT + 3 s of its own send."""
    marks: dict[str, int] = {}
    deadlines: dict[str, float] = {}
    for cell, opened in group:
        marks[cell.name] = js(opened.page, f"{STATE}.length")
        world.halfopen[cell.name].set("blackhole")
        js(opened.page, "h.emit('m', 'record', 'lost-in-the-hole')")
        deadlines[cell.name] = time.monotonic() + PING_TIMEOUT + 3
    for cell, opened in group:
        left = max(0.05, deadlines[cell.name] - time.monotonic())
        wait(opened.page, f"{STATE}.slice(arg).includes('reconnecting')", marks[cell.name],
             timeout=int(left * 1000))  # fmt: skip
        world.halfopen[cell.name].set("forward")
    for _, opened in group:
        wait(opened.page, "h.socket('m').state === 'connected'", None, timeout=15_000)


class SitePages:
    """The pages of a site's cells (TOGETHER), opened together when the first of them
    comes up, each in its own context: their windows overlap instead of following one
    another. Idle cut: the proxy cuts each connection on its own. Half-open: each page
    has a proxy of its own, black-holed and restored here (_half_open_pages)."""

    def __init__(self, browser: Browser, world: World) -> None:
        self.browser, self.world = browser, world
        self.cells: dict[str, JsCell] = {}
        self.failed: dict[str, BaseException] = {}  # site -> what broke its common part

    def get(self, cell: Cell) -> JsCell:
        if cell.site in self.failed:
            raise AssertionError(f"{cell.site}: the cells' common part failed") from (
                self.failed[cell.site]
            )
        if cell.name not in self.cells:
            group = [c for c in CELLS if c.site == cell.site]
            try:
                for c in group:
                    self.cells[c.name] = _open_js_cell(self.browser, self.world, c)
                if cell.site == "half-open":
                    _half_open_pages(self.world, [(c, self.cells[c.name]) for c in group])
            except BaseException as exc:
                self.failed[cell.site] = exc
                raise
        return self.cells[cell.name]

    def close(self) -> None:
        for opened in self.cells.values():
            opened.context.close()


@pytest.fixture(scope="module")
def site_pages(browser: Browser, world: World) -> Iterator[SitePages]:
    pages = SitePages(browser, world)
    yield pages
    pages.close()


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_cell_js(
    world: World, results: Path, browser: Browser, site_pages: SitePages, cell: Cell
) -> None:
    """The same cell for the browser client in Chromium (upgrade off: the transport the
    racing chose is the one measured). Half-open: the path was black-holed and restored
    in SitePages.get, beside the other half-open pages."""
    opened = site_pages.get(cell) if cell.site in TOGETHER else None
    opened = opened or _open_js_cell(browser, world, cell)
    page, first_ms, chosen = opened.page, opened.first_ms, opened.chosen
    try:
        assert opened.echo == "first"
        if cell.site == "idle-cut":
            assert js(page, "document.visibilityState") == "visible"  # timers unthrottled
            wait(page, "window.settledAt !== undefined", None,
                 timeout=int((6 * IDLE_CUT + 4) * 1000))  # fmt: skip
            # The condition is idleness itself: 2.5 cut periods from the moment the
            # socket settled, on the page's clock.
            wait(page, "performance.now() >= window.settledAt + arg", 2.5 * IDLE_CUT * 1000,
                 timeout=int((2.5 * IDLE_CUT + 15) * 1000))  # fmt: skip
        for i in range(SENT // 2, SENT):
            js(page, "h.emit('m', 'record', arg)", i)
        recorded = js(page, "h.call('m', 'recorded', null, {timeout: 15000})")
        sent = [x for x in recorded if isinstance(x, int)]
        js(page, "h.emit('m', 'burst', {n: arg})", BURST)
        got = wait_events(page, "m", "n", BURST)
        stats = js(page, "h.socket('m').stats")
        states = js(page, STATE)
        row: dict[str, Any] = {
            "client": "js",
            "cell": cell.name,
            "what": cell.what,
            "offered": ",".join(cell.transports) if cell.transports else "default",
            "expect": cell.expect,
            "transport": chosen,
            "final_transport": js(page, "h.socket('m').transport"),
            "first_message_ms": round(first_ms),
            "sent_delivered": len(sent),
            "sent": SENT,
            "received": len(set(got)),
            "burst": BURST,
            "duplicates": (len(sent) - len(set(sent)))
            + (len(got) - len(set(got)))
            + stats["duplicates"],
            "reconnects": states.count("reconnecting"),
            "idle_cuts": stats["idleCuts"],
            "ping_interval_ms": stats["pingInterval"],
        }
        _write(results, row)
        assert sent == list(range(SENT)), sent
        if cell.site == "half-open":
            assert recorded.count("lost-in-the-hole") == 1, recorded
        assert sorted(got) == list(range(BURST)), got
        assert row["duplicates"] == 0
        assert chosen == cell.expect, chosen
        assert first_ms < FIRST_MESSAGE * 1000, first_ms
        lo, hi = cell.reconnects
        assert lo <= row["reconnects"] <= hi, row["reconnects"]
    finally:
        opened.context.close()
