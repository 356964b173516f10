// The socket against the in-memory fake server (fakes.js): negotiate and fallback,
// remembered transport, backoff, offline queue, resume with replay and dedupe, acks,
// upgrade to WebSocket without loss or reordering, browser events and liveness.
import { test } from "node:test";
import assert from "node:assert/strict";

import { AckError, AckTimeout, ConnectionClosed, FrameTooLarge, QueueFull, RequestLost, connect } from "../../anywire/clients/js/anywire.js";
import { FakeClock, FakeServer, FakeStorage, FakeWindow, settle } from "./fakes.js";

const KEY = "anywire:transport:http://srv.test/anywire:/";

function setup(options = {}, serverOptions = {}, envExtra = {}) {
  const clock = new FakeClock();
  const server = new FakeServer({ clock, ...serverOptions });
  const window = new FakeWindow();
  const storage = new FakeStorage();
  let tokens = 0;
  const make = (more = {}) => connect({
    url: "http://srv.test",
    getToken: async () => `tok${++tokens}`,
    env: server.env({ window, storage, ...envExtra }),
    upgrade: false,
    ...options,
    ...more,
  });
  const socket = make();
  const states = [];
  const transports = [];
  socket.onState((s) => states.push(s));
  socket.onTransport((t) => transports.push(t));
  return { clock, server, window, storage, socket, states, transports, make, tokens: () => tokens };
}

/** Advances the fake clock in steps until `cond()` holds (bounded). */
async function until(clock, cond, step = 10, limit = 60000) {
  for (let waited = 0; !cond(); waited += step) {
    if (waited > limit) throw new Error(`condition not met within ${limit} ms of fake time`);
    await clock.advance(step);
  }
}

test("connects over the first offer, with a fresh token on every negotiate", async () => {
  const { socket, server, states, transports, clock } = setup();
  await socket.ready();
  assert.equal(socket.transport, "websocket");
  assert.deepEqual(states, ["connecting", "connected"]);
  assert.deepEqual(transports, ["websocket"]);
  const [first] = server.negotiations;
  assert.deepEqual(first.body, { v: 1, ns: "/", transports: ["websocket", "sse", "longpoll"], codecs: ["msgpack", "json"], failed: [] });
  assert.equal(first.auth, "Bearer tok1");
  assert.equal(socket.sid, server.session.sid);
  // The WebSocket carries MessagePack: binary messages.
  assert.ok(server.wsCreated[0].sentRaw[0] instanceof Uint8Array);
  server.dropLive();
  await until(clock, () => socket.state === "connected" && server.negotiations.length === 2);
  assert.equal(server.negotiations[1].auth, "Bearer tok2");
  assert.equal(server.negotiations[1].body.resume, "token-" + socket.sid);
  assert.equal(socket.recovered, true);
  await socket.close();
});

for (const transport of ["websocket", "sse", "longpoll"]) {
  for (const codec of ["json", "msgpack"]) {
    test(`${transport}/${codec}: emit, call, join, leave, server requests`, async () => {
      const { socket, server, clock } = setup({ transports: [transport], codec });
      await socket.ready();
      assert.equal(socket.transport, transport);
      socket.emit("note", { n: 1 });
      assert.deepEqual(await socket.call("echo", { bytes: Uint8Array.of(1, 2) }), { bytes: Uint8Array.of(1, 2) });
      await assert.rejects(socket.call("missing"), (e) => e instanceof AckError && e.code === "no_handler");
      const joined = await socket.join("lobby", { meta: { nick: "ann" } });
      assert.equal(joined.room, "lobby");
      assert.deepEqual(socket.rooms, { lobby: { nick: "ann" } });
      assert.deepEqual(await socket.leave("lobby"), { room: "lobby" });
      assert.deepEqual(socket.rooms, {});
      assert.deepEqual(server.received("note"), [{ n: 1 }]);

      // Server events: handlers get data and info; requests are answered.
      const seen = [];
      socket.on("news", (d, info) => seen.push([d, info.room, info.offset]));
      socket.on("double", (d) => d * 2);
      socket.on("slow", async (d) => d + 1);
      socket.on("boom", () => { throw new Error("kaput"); });
      server.push("news", "hi", { r: "lobby", o: ["room:/:lobby", "ep", 7] });
      server.push("double", 21, { id: 1 });
      server.push("slow", 1, { id: 2 });
      server.push("boom", null, { id: 3 });
      server.push("nobody", null, { id: 4 });
      await until(clock, () => server.session.log.filter((f) => f.t === "ack").length === 4);
      assert.deepEqual(seen, [["hi", "lobby", ["room:/:lobby", "ep", 7]]]);
      assert.deepEqual(socket.positions, { lobby: ["ep", 7] });
      const acks = Object.fromEntries(server.session.log.filter((f) => f.t === "ack").map((f) => [f.id, f]));
      assert.equal(acks[1].d, 42);
      assert.equal(acks[2].d, 2);
      assert.deepEqual(acks[3].err, { code: "handler_error", message: "kaput" });
      assert.equal(acks[4].err.code, "no_handler");
      await socket.close();
      assert.equal(socket.state, "disconnected");
      assert.equal(server.session.closed, "client");
    });
  }
}

test("falls back in the offered order, reporting failed transports, with the connect timeout", async () => {
  const { socket, server, clock, storage } = setup({ connectTimeout: 3000, raceAfter: null });
  server.mode.websocket = "refuse"; // closes before opening (Chromium: 1006)
  server.mode.sse = "hang"; // a buffering proxy: nothing at all arrives
  const ready = socket.ready();
  await until(clock, () => socket.state === "connected", 100);
  await ready;
  assert.equal(socket.transport, "longpoll");
  assert.deepEqual(server.negotiations.map((n) => n.body.failed), [[], ["websocket"], ["websocket", "sse"]]);
  assert.ok(clock.t >= 3000 && clock.t < 3200, `sse failed by the connect timeout, at ${clock.t}`);
  // Why each one failed, told once, in the negotiate that follows the failure (metrics).
  assert.deepEqual(server.negotiations.map((n) => n.body.failures), [undefined, { websocket: "upgrade" }, { sse: "timeout" }]);
  assert.deepEqual(socket.failed, ["websocket", "sse"]);
  assert.equal(storage.getItem(KEY), "longpoll");
  // Reconnects keep reporting them, so the working transport is offered first.
  server.dropLive();
  await until(clock, () => server.negotiations.length === 4 && socket.state === "connected");
  assert.deepEqual(server.negotiations[3].body.failed, ["websocket", "sse"]);
  assert.equal(server.negotiations[3].body.failures, undefined);
  assert.equal(socket.transport, "longpoll");
  await socket.close();
});

test("a black-holed transport is raced past after raceAfter, not after the connect timeout", async () => {
  const { socket, server, clock } = setup({ connectTimeout: 3000 });
  server.mode.websocket = "hang"; // a proxy black-holing everything after the 101
  const ready = socket.ready();
  await until(clock, () => socket.state === "connected", 10);
  await ready;
  assert.equal(socket.transport, "sse");
  assert.ok(clock.t >= 350 && clock.t < 500, `sse won at ${clock.t}`);
  // Each contender had its own ticket; the loser is not reported as failed.
  assert.equal(server.negotiations.length, 2);
  assert.deepEqual(socket.failed, []);
  // A resume is not raced: the loser is tried last, so the reconnect does not wait on it.
  server.dropLive();
  const at = clock.t;
  await until(clock, () => server.negotiations.length === 3 && socket.state === "connected", 10);
  assert.equal(socket.transport, "sse");
  assert.ok(clock.t - at < 3000, `reconnected in ${clock.t - at}`);
  await socket.close();
});

test("a remembered transport is where the next page load starts", async () => {
  const { socket, server, storage, make } = setup();
  server.mode.websocket = "refuse";
  await socket.ready();
  assert.equal(socket.transport, "sse");
  assert.equal(storage.getItem(KEY), "sse");
  await socket.close();
  const next = make();
  await next.ready();
  assert.equal(next.transport, "sse");
  const last = server.negotiations.at(-1).body;
  assert.deepEqual(last.failed, ["websocket"]);
  assert.equal(server.wsCreated.length, 1, "no second WebSocket attempt");
  await next.close();
  server.mode.websocket = "ok";
  // remember: false neither reads nor writes it.
  storage.setItem(KEY, "longpoll");
  const plain = make({ remember: false });
  await plain.ready();
  assert.deepEqual(server.negotiations.at(-1).body.failed, []);
  assert.equal(storage.getItem(KEY), "longpoll");
  await plain.close();
});

test("4501 or 4505 while opening are terminal; 4004 and 4007 renegotiate without blaming the transport", async () => {
  const a = setup();
  a.server.openCodes.push(4004, 4007);
  await until(a.clock, () => a.socket.state === "connected");
  assert.equal(a.socket.transport, "websocket");
  assert.deepEqual(a.server.negotiations.map((n) => [n.auth, n.body.failed]), [["Bearer tok1", []], ["Bearer tok2", []], ["Bearer tok3", []]]);
  await a.socket.close();

  const b = setup();
  b.server.openCodes.push(4501);
  const refused = assert.rejects(b.socket.ready(), (e) => e instanceof ConnectionClosed && e.code === 4501);
  await b.clock.advance(100);
  await refused;
  assert.equal(b.socket.state, "disconnected");
  assert.throws(() => b.socket.emit("x"), ConnectionClosed);
  await b.clock.advance(60000);
  assert.equal(b.server.negotiations.length, 1);
});

test("negotiate refused with 401 is terminal; a server that is down is retried with backoff", async () => {
  const a = setup();
  a.server.negotiateStatus = { status: 401, code: 4501 };
  await assert.rejects(a.socket.ready(), (e) => e instanceof ConnectionClosed && e.code === 4501);
  assert.equal(a.window.count(), 0, "window listeners removed");

  const b = setup({ backoffBase: 500, backoffMax: 4000 }, {}, { random: () => 1 - 1e-9 });
  b.server.down = true;
  const times = [];
  const count = () => b.server.negotiations.length;
  for (let i = 1; i <= 6; i++) {
    await until(b.clock, () => count() >= i, 5);
    times.push(b.clock.t);
  }
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  // random() ~ 1: each delay is its ceiling: 500, 1000, 2000, 4000, 4000 (capped).
  const ceilings = [500, 1000, 2000, 4000, 4000];
  gaps.forEach((g, i) => assert.ok(Math.abs(g - ceilings[i]) <= 10, `gap ${i}: ${g}`));
  assert.equal(b.socket.state, "connecting");
  b.server.down = false;
  await until(b.clock, () => b.socket.state === "connected");
  await b.socket.close();
});

test("frames created offline are queued (bounded) and sent in order after the hello", async () => {
  const { socket, server, clock } = setup({ maxQueue: 3, backoffBase: 1000 });
  await socket.ready();
  server.down = true;
  server.dropLive();
  await until(clock, () => socket.state === "reconnecting");
  socket.emit("q", 1);
  socket.emit("q", 2);
  const pending = socket.call("echo", 3);
  await settle();
  assert.throws(() => socket.emit("q", 4), QueueFull);
  await assert.rejects(socket.call("echo", 5), QueueFull);
  server.down = false;
  await until(clock, () => socket.state === "connected");
  assert.equal(await pending, 3);
  assert.deepEqual(server.received(), [1, 2, 3]);
  assert.deepEqual(server.session.log.map((f) => f.s), [1, 2, 3]);
  await socket.close();
});

test("resume replays what was lost and drops duplicates; the server gets each frame once", async () => {
  const { socket, server, clock } = setup({ transports: ["websocket"] });
  const got = [];
  socket.on("n", (d) => got.push(d));
  await socket.ready();
  for (let i = 0; i < 5; i++) server.push("n", i);
  await until(clock, () => got.length === 5);
  // The network swallows what follows: events 5-9 and the client's frames are lost.
  server.blackhole = true;
  for (let i = 5; i < 10; i++) server.push("n", i);
  for (let i = 0; i < 3; i++) socket.emit("c", i);
  await settle();
  server.blackhole = false;
  server.dropLive();
  for (let i = 10; i < 12; i++) server.push("n", i); // while detached
  await until(clock, () => socket.state === "connected" && got.length === 12);
  assert.deepEqual(got, [...Array(12).keys()]);
  assert.equal(socket.recovered, true);
  assert.deepEqual(server.received("c"), [0, 1, 2]);
  // Duplicates (a replay of frames already seen) are dropped silently.
  const conn = server.live();
  conn.write(server.session.outbox.length ? server.session.outbox : [{ t: "event", s: 3, e: "n", d: 3 }]);
  conn.write([{ t: "event", s: 2, e: "n", d: 2 }]);
  await settle();
  assert.deepEqual(got, [...Array(12).keys()]);
  await socket.close();
});

test("a sequence gap drops the connection and resumes from the last frame in order", async () => {
  const { socket, server, clock } = setup({ transports: ["sse"] });
  const got = [];
  socket.on("n", (d) => got.push(d));
  await socket.ready();
  server.push("n", 0);
  server.blackhole = true;
  server.push("n", 1);
  server.blackhole = false;
  server.push("n", 2); // arrives: s=3 after s=1, a gap
  await until(clock, () => got.length === 3);
  assert.deepEqual(got, [0, 1, 2]);
  assert.equal(server.negotiations.length, 2);
  assert.equal(socket.recovered, true);
  await socket.close();
});

test("recovered: false starts afresh: rooms rejoined from their positions, then the renumbered resend", async () => {
  const { socket, server, clock } = setup({ transports: ["longpoll"] });
  await socket.ready();
  await socket.join("lobby", { meta: { nick: "ann" } });
  server.push("chat", "x", { r: "lobby", o: ["room:/:lobby", "ep1", 41] });
  await until(clock, () => socket.positions.lobby[0] === "ep1");
  server.down = true;
  server.dropLive();
  await until(clock, () => socket.state === "reconnecting");
  socket.emit("offline", 1);
  server.sessions.clear(); // the server restarted: the session is gone
  server.down = false;
  const connects = [];
  socket.onConnect((info) => connects.push(info));
  await until(clock, () => server.session && server.session.log.length === 2);
  assert.equal(socket.recovered, false);
  assert.deepEqual(connects, [{ sid: socket.sid, recovered: false, transport: "longpoll" }]);
  // The client was in the room when it queued the event: the rejoin goes first.
  const [rejoin, resent] = server.session.log;
  assert.deepEqual([rejoin.t, rejoin.s, rejoin.r, rejoin.meta, rejoin.since], ["join", 1, "lobby", { nick: "ann" }, ["ep1", 41]]);
  assert.deepEqual([resent.t, resent.s, resent.e], ["event", 2, "offline"]);
  await until(clock, () => socket.peer.unconfirmed.length === 0);
  assert.deepEqual(socket.rooms, { lobby: { nick: "ann" } });
  await socket.close();
});

test("acks: timeouts reject AckTimeout, late answers are ignored, close fails the rest", async () => {
  const { socket, server, clock } = setup({ ackTimeout: 2000 });
  await socket.ready();
  server.answer = false;
  const slow = assert.rejects(socket.call("echo", 1), AckTimeout);
  const custom = assert.rejects(socket.call("echo", 2, { timeout: 500 }), AckTimeout);
  await clock.advance(600);
  await custom;
  let done = false;
  slow.then(() => (done = true));
  await settle();
  assert.equal(done, false, "the default timeout (2000 ms) has not passed");
  await clock.advance(1500);
  await slow;
  // The answer arrives after all: ignored.
  server.answer = true;
  server.session.log.forEach((f) => server._handle(server.session, f));
  await settle();
  const lingering = socket.call("echo", 3);
  await settle();
  server.answer = false;
  const last = socket.call("echo", 4);
  await settle();
  assert.equal(await lingering, 3);
  const closing = assert.rejects(last, (e) => e instanceof ConnectionClosed && e.code === 4500);
  await socket.close();
  await closing;
  await assert.rejects(socket.call("echo", 5), ConnectionClosed);
});

test("server close codes decide: 4000 reconnects, 4500 ends, error frames are reported", async () => {
  const { socket, server, clock, states } = setup();
  const errors = [];
  const disconnects = [];
  socket.onError((c, m) => errors.push([c, m]));
  socket.onDisconnect((c, r) => disconnects.push([c, r]));
  await socket.ready();
  server.live().write([{ t: "error", c: 4502, m: "bad frame" }]);
  await settle();
  assert.deepEqual(errors, [[4502, "bad frame"]]);
  server.closeLive(4000, "restarting");
  await until(clock, () => server.negotiations.length === 2 && socket.state === "connected");
  assert.deepEqual(socket.lastClose, { code: 4000, reason: "restarting" });
  server.closeLive(4500, "kicked");
  await settle();
  assert.equal(socket.state, "disconnected");
  await assert.rejects(socket.ready(), (e) => e instanceof ConnectionClosed && e.code === 4500);
  assert.deepEqual(disconnects, [[4000, "restarting"], [4500, "kicked"]]);
  assert.deepEqual(states, ["connecting", "connected", "reconnecting", "connected", "disconnected"]);
  await clock.advance(60000);
  assert.equal(server.negotiations.length, 2);
});

test("pings are answered with pong and a receipt; receipts every 16 frames", async () => {
  const { socket, server, clock } = setup({ transports: ["sse"] });
  socket.on("n", () => {});
  await socket.ready();
  for (let i = 0; i < 20; i++) server.push("n", i);
  await until(clock, () => server.posts.flat().some((f) => f.t === "rx"));
  assert.deepEqual(server.posts.flat().filter((f) => f.t === "rx").map((f) => f.n), [16]);
  server.live().write([{ t: "ping" }]);
  await until(clock, () => server.posts.flat().some((f) => f.t === "pong"));
  const last = server.posts.at(-1);
  assert.deepEqual(last, [{ t: "pong" }, { t: "rx", n: 20 }]);
  await socket.close();
});

test("a silent server is declared dead after ping_interval + ping_timeout", async () => {
  const { socket, server, clock } = setup({}, { limits: { ping_interval: 1000, ping_timeout: 500 } });
  await socket.ready();
  server.blackhole = true;
  await clock.advance(1400);
  assert.equal(socket.state, "connected");
  await clock.advance(200);
  assert.equal(socket.state, "reconnecting");
  server.blackhole = false;
  await until(clock, () => socket.state === "connected");
  await socket.close();
});

test("offline drops the connection; online and visibility reconnect without waiting out the backoff", async () => {
  const { socket, server, clock, window } = setup({ backoffBase: 60000, backoffMax: 60000 }, {}, { random: () => 0.9 });
  await socket.ready();
  server.down = true;
  window.fire("offline");
  await settle();
  assert.equal(socket.state, "reconnecting");
  await clock.advance(60000); // first attempt fails while offline; next one is 54 s away
  const before = server.negotiations.length;
  server.down = false;
  window.fire("online");
  await settle();
  assert.equal(server.negotiations.length, before + 1);
  await until(clock, () => socket.state === "connected", 1, 100);

  server.down = true;
  server.dropLive();
  await clock.advance(60000);
  const again = server.negotiations.length;
  server.down = false;
  window.setVisibility("hidden");
  await settle();
  assert.equal(server.negotiations.length, again, "hidden: nothing happens");
  window.setVisibility("visible");
  await until(clock, () => socket.state === "connected", 1, 100);
  assert.equal(server.negotiations.length, again + 1);
  await socket.close();
  assert.equal(window.count(), 0);
});

test("a page becoming visible checks liveness at once (background timers are throttled)", async () => {
  const { socket, server, clock, window } = setup({}, { limits: { ping_interval: 1000, ping_timeout: 500 } });
  await socket.ready();
  server.blackhole = true;
  clock.t += 5000; // time passed while the tab slept; no timer ran
  window.setVisibility("visible");
  await settle();
  assert.equal(socket.state, "reconnecting");
  server.blackhole = false;
  await until(clock, () => socket.state === "connected");
  await socket.close();
});

test("upgrade to WebSocket in the background loses and reorders nothing", async () => {
  for (const from of ["sse", "longpoll"]) {
    const { socket, server, clock, states, storage } = setup({ upgrade: true, upgradeDelay: 1000, transports: ["websocket", from] });
    server.mode.websocket = "refuse";
    const got = [];
    const disconnects = [];
    socket.on("n", (d) => got.push(d));
    socket.onDisconnect((c) => disconnects.push(c));
    await until(clock, () => socket.state === "connected");
    assert.equal(socket.transport, from);
    server.mode.websocket = "ok"; // e.g. the proxy only broke the first try
    // Traffic both ways while the probe runs and the switch happens.
    let i = 0;
    let sent = 0;
    while (socket.transport !== "websocket") {
      server.push("n", i++);
      socket.emit("c", sent++);
      await clock.advance(50);
      if (clock.t > 20000) throw new Error("no upgrade");
    }
    for (let k = 0; k < 20; k++) {
      server.push("n", i++);
      socket.emit("c", sent++);
      await clock.advance(5);
    }
    await until(clock, () => got.length === i && server.received("c").length === sent);
    assert.deepEqual(got, [...Array(i).keys()], `${from}: every server event once, in order`);
    assert.deepEqual(server.received("c"), [...Array(sent).keys()], `${from}: every client event once, in order`);
    assert.deepEqual(disconnects, [], "the old transport's 4005 is not a disconnect");
    assert.deepEqual(states, ["connecting", "connected"]);
    assert.deepEqual(socket.failed, []);
    assert.equal(storage.getItem(KEY), "websocket");
    assert.ok(server.conns.some((c) => c.transport === from && c.sent.some((f) => f.t === "close" && f.c === 4005)));
    await socket.close();
  }
});

test("a failed upgrade probe leaves the session where it is and is not retried", async () => {
  const { socket, server, clock } = setup({ upgrade: true, upgradeDelay: 100, connectTimeout: 1000, transports: ["websocket", "longpoll"] });
  server.mode.websocket = "refuse";
  await until(clock, () => socket.state === "connected");
  server.mode.websocket = "hang";
  await clock.advance(3000);
  assert.equal(socket.transport, "longpoll");
  assert.equal(socket.state, "connected");
  assert.deepEqual(socket.failed, ["websocket"]);
  const probes = server.wsCreated.length;
  server.dropLive();
  await until(clock, () => socket.state === "connected");
  await clock.advance(3000);
  assert.equal(server.wsCreated.length, probes);
  assert.equal(await socket.call("echo", "still"), "still");
  await socket.close();
});

test("dropConnection() resumes; bad input is refused before it is queued", async () => {
  const { socket, server, clock } = setup({ transports: ["websocket"] }, { limits: { max_frame_size: 200 } });
  await socket.ready();
  socket.dropConnection();
  assert.equal(socket.state, "reconnecting");
  await until(clock, () => socket.state === "connected");
  assert.equal(socket.recovered, true);
  assert.throws(() => socket.emit("big", "x".repeat(500)), FrameTooLarge);
  assert.throws(() => socket.emit("", 1), TypeError);
  assert.throws(() => socket.emit("x".repeat(201), 1), TypeError);
  assert.throws(() => socket.emit("nan", NaN), TypeError);
  await assert.rejects(socket.join(""), TypeError);
  socket.emit("fine", 1);
  assert.equal(await socket.call("echo", "ok"), "ok");
  assert.deepEqual(server.received(), [1, "ok"]);
  await socket.close();
});

test("options are validated", () => {
  assert.throws(() => connect({ transports: ["carrier-pigeon"] }), TypeError);
  assert.throws(() => connect({ transports: [] }), TypeError);
  assert.throws(() => connect({ codec: "xml" }), TypeError);
  assert.throws(() => connect({ codec: "toString" }), TypeError);
  assert.throws(() => connect({ getToken: "a-token" }), TypeError);
  assert.throws(() => connect({ namespace: "" }), TypeError);
  assert.throws(() => connect({ url: 5 }), TypeError);
  assert.throws(() => connect({ transports: ["constructor"] }), TypeError);
  assert.throws(() => connect({ connectTimeout: 0 }), TypeError);
  assert.throws(() => connect({ maxQueue: -1 }), TypeError);
});

test("pagehide ends the session at once; a page entering the back/forward cache keeps it", async () => {
  for (const transport of ["websocket", "sse", "longpoll"]) {
    const { socket, server, clock, window } = setup({ transports: [transport] });
    await socket.ready();
    const session = server.session;
    window.listeners.get("pagehide").forEach((fn) => fn({ type: "pagehide", persisted: true }));
    await settle();
    assert.equal(socket.state, "connected");
    window.listeners.get("pagehide").forEach((fn) => fn({ type: "pagehide", persisted: false }));
    await clock.advance(100);
    assert.equal(socket.state, "disconnected");
    assert.equal(session.closed, "client", transport);
  }
  const { socket, server, window } = setup({ closeOnPageHide: false });
  await socket.ready();
  window.listeners.get("pagehide").forEach((fn) => fn({ type: "pagehide", persisted: false }));
  await settle();
  assert.equal(socket.state, "connected");
  await socket.close();
  assert.equal(server.session.closed, "client");
});

test("a negotiate without an answer is bounded by connectTimeout, then retried", async () => {
  const { socket, server, clock } = setup({ connectTimeout: 1000, backoffBase: 100 });
  server.negotiateHangs = 1;
  let unhandled = 0;
  const count = () => unhandled++;
  process.on("unhandledRejection", count);
  await clock.advance(999);
  assert.equal(server.negotiations.length, 1);
  assert.equal(socket.state, "connecting");
  await until(clock, () => socket.state === "connected");
  assert.ok(clock.t >= 1000 && clock.t <= 1110, `connected at ${clock.t}`);
  assert.equal(server.negotiations.length, 2);
  process.off("unhandledRejection", count);
  assert.equal(unhandled, 0);
  await socket.close();
});

test("back online, another network: a ping must be answered within ping_timeout", async () => {
  for (const transport of ["websocket", "sse", "longpoll"]) {
    for (const fire of [(w) => w.fire("online"), (w) => w.networkChange()]) {
      const { socket, server, clock, window } = setup({ transports: [transport] }, { limits: { ping_timeout: 2000 } });
      await socket.ready();
      // A healthy connection answers: nothing happens.
      fire(window);
      await clock.advance(2500);
      assert.equal(socket.state, "connected", transport);
      assert.ok(server.session.log.length === 0 && server.conns.at(-1).sent.some((f) => f.t === "pong"), transport);
      // A half-open one (the network changed, nothing gets through any more) is dropped.
      server.blackhole = server.blackholeUp = true;
      fire(window);
      await clock.advance(1900);
      assert.equal(socket.state, "connected", transport);
      await clock.advance(200);
      assert.equal(socket.state, "reconnecting", transport);
      server.blackhole = server.blackholeUp = false;
      await until(clock, () => socket.state === "connected");
      await socket.close();
      assert.equal(window.count(), 0);
    }
  }
});

for (const transport of ["websocket", "sse", "longpoll"]) {
  test(`${transport}: a send on a half-open path is noticed within ping_timeout, then resumed without loss`, async () => {
    const { socket, server, clock } = setup({ transports: [transport] }, { limits: { ping_interval: 20000, ping_timeout: 2000 } });
    const got = [];
    socket.on("n", (d) => got.push(d));
    await socket.ready();
    for (let i = 0; i < 3; i++) socket.emit("c", i);
    server.push("n", 0);
    await until(clock, () => got.length === 1 && server.received("c").length === 3);
    await clock.advance(5000); // idle: nothing owed either way
    server.blackhole = server.blackholeUp = true;
    const sentAt = clock.now();
    socket.emit("c", 3); // swallowed
    server.push("n", 1); // swallowed too
    await until(clock, () => socket.state !== "connected", 10, 20000);
    const detected = clock.now() - sentAt;
    assert.ok(detected <= 2000 + 10, `${transport}: noticed after ${detected} ms`);
    server.blackhole = server.blackholeUp = false;
    await until(clock, () => socket.state === "connected" && got.length === 2 && server.received("c").length === 4);
    socket.emit("c", 4);
    server.push("n", 2);
    await until(clock, () => got.length === 3 && server.received("c").length === 5);
    assert.deepEqual(server.received("c"), [0, 1, 2, 3, 4]);
    assert.deepEqual(got, [0, 1, 2]);
    await socket.close();
  });
}

test("a quiet half-open path with nothing sent waits for the heartbeat", async () => {
  const { socket, server, clock } = setup({ transports: ["websocket"] }, { limits: { ping_interval: 20000, ping_timeout: 2000 } });
  await socket.ready();
  server.blackhole = true;
  await clock.advance(21000);
  assert.equal(socket.state, "connected"); // nothing sent, nothing owed: no way to know yet
  await clock.advance(1100);
  assert.equal(socket.state, "reconnecting");
  server.blackhole = false;
  await socket.close();
});

test("close() while negotiating or opening leaves no connection behind", async () => {
  const a = setup();
  let open;
  a.server.gate = new Promise((resolve) => (open = resolve));
  await settle();
  assert.equal(a.server.negotiations.length, 1); // sent, not answered yet
  await a.socket.close();
  open();
  await a.clock.advance(10000);
  assert.equal(a.server.wsCreated.length, 0);
  assert.equal(a.socket.state, "disconnected");

  const b = setup({ connectTimeout: 1000 });
  b.server.mode.websocket = "hang";
  await until(b.clock, () => b.server.wsCreated.length === 1);
  await b.socket.close();
  assert.equal(b.server.wsCreated[0].readyState, 3, "the attempt was closed");
  await b.clock.advance(10000);
  assert.equal(b.server.negotiations.length, 1);
  await assert.rejects(b.socket.ready(), ConnectionClosed);
});

test("a POST answered 204 confirms its frames: a lost session does not get them twice", async () => {
  for (const transport of ["sse", "longpoll"]) {
    const { socket, server, clock } = setup({ transports: [transport] });
    await socket.ready();
    server.blackhole = true; // the downstream (and so every rx) is lost from here on
    for (let i = 0; i < 5; i++) socket.emit("c", i);
    await settle();
    assert.deepEqual(server.received("c"), [0, 1, 2, 3, 4], transport);
    assert.equal(socket.peer.unconfirmed.length, 0, transport);
    server.blackhole = false;
    server.dropLive();
    server.sessions.clear(); // the server restarted: the session is gone
    await until(clock, () => server.sessions.size === 1 && socket.state === "connected");
    assert.equal(socket.recovered, false);
    socket.emit("c", 5);
    await until(clock, () => server.session.log.length === 1);
    assert.deepEqual(server.received("c"), [5], `${transport}: nothing resent`);
    await socket.close();
  }
});

test("rooms named like Object.prototype members are ordinary rooms", async () => {
  const { socket, server, clock } = setup({ transports: ["longpoll"] });
  await socket.ready();
  await socket.join("__proto__", { meta: { a: 1 } });
  await socket.join("toString");
  server.push("m", 1, { r: "__proto__", o: ["room:/:__proto__", "ep", 3] });
  await until(clock, () => socket.positions.__proto__[1] === 3);
  assert.deepEqual(Object.keys(socket.rooms), ["__proto__", "toString"]);
  assert.deepEqual(socket.positions.__proto__, ["ep", 3]);
  assert.deepEqual(Object.keys(socket.positions), ["toString", "__proto__"]); // most recently moved last
  assert.equal(Object.getPrototypeOf(socket.rooms), Object.prototype);
  server.dropLive();
  server.sessions.clear();
  await until(clock, () => server.sessions.size === 1 && server.session.log.length === 2);
  // Each from its position: the last event seen, else where the join answer started it.
  const joins = server.session.log.map((f) => [f.r, f.since ?? null]);
  assert.deepEqual(joins, [["__proto__", ["ep", 3]], ["toString", ["ep", 0]]]);
  await socket.leave("__proto__");
  assert.deepEqual(Object.keys(socket.rooms), ["toString"]);
  await socket.close();
});

test("closed right after connect(): no request, one state change", async () => {
  const { socket, server, clock, states } = setup();
  await socket.close();
  await clock.advance(10000);
  assert.deepEqual(states, ["disconnected"]);
  assert.equal(server.negotiations.length, 0);
});


// -- continuity across sessions: stream positions, rooms, open requests -------------------

/** The server restarts under a live socket: the session is gone, the next hello is fresh. */
async function restart(server, clock, socket, more = () => {}) {
  server.down = true;
  server.dropLive();
  await until(clock, () => socket.state === "reconnecting");
  server.sessions.clear();
  more();
  server.down = false;
  await until(clock, () => socket.state === "connected");
}

test("a stream event at or below the socket's position is dropped and counted, never handled", async () => {
  const { socket, server, clock } = setup({ transports: ["websocket"] });
  const got = [];
  socket.on("n", (d) => got.push(d));
  await socket.ready();
  assert.equal(socket.stats.duplicates, 0);
  const at = (offset, epoch = "ep") => ({ r: "lobby", o: ["room:/:lobby", epoch, offset] });
  server.push("n", 1, at(1));
  server.push("n", 2, at(2));
  server.push("n", "again", at(2)); // a new sequence number, an offset the socket has
  server.push("n", "older", at(1));
  server.push("n", 3, at(3));
  server.push("n", "new epoch", at(1, "ep2")); // another history: any offset is new
  await until(clock, () => socket.peer.inLast === 6);
  assert.deepEqual(got, [1, 2, 3, "new epoch"]);
  assert.equal(socket.stats.duplicates, 2);
  assert.deepEqual(socket.positions, { lobby: ["ep2", 1] });
  await socket.close();
});

test("a fresh hello rejoins rooms and pending joins ahead of the resent frames, from current positions", async () => {
  const { socket, server, clock } = setup({ transports: ["longpoll"] });
  await socket.ready();
  await socket.join("lobby", { meta: { nick: "ann" } });
  server.push("chat", "x", { r: "lobby", o: ["room:/:lobby", "ep1", 41] });
  server.push("chat", "y", { r: "later", o: ["room:/:later", "ep3", 5] });
  await until(clock, () => socket.positions.later !== undefined);
  // Received and confirmed by the session, never answered: pending, not resent.
  server.answer = false;
  const pending = socket.join("pending", { meta: 7, timeout: 60000 });
  await until(clock, () => server.session.log.some((f) => f.r === "pending") && socket.peer.unconfirmed.length === 0);
  const pendingId = server.session.log.at(-1).id;
  server.down = true;
  server.dropLive();
  await until(clock, () => socket.state === "reconnecting");
  // Queued while offline: resent as they are, the join asking from where the socket stands.
  socket.emit("offline", 1);
  const later = socket.join("later", { since: ["ep3", 1] });
  server.sessions.clear(); // the server restarted: the session is gone
  server.answer = true;
  server.down = false;
  await until(clock, () => server.session && server.session.log.length === 4);
  assert.equal(socket.recovered, false);
  const log = server.session.log.map((f) => [f.s, f.t, f.r ?? f.e, f.since ?? null]);
  assert.deepEqual(log, [
    [1, "join", "lobby", ["ep1", 41]],
    [2, "join", "pending", null],
    [3, "event", "offline", null],
    [4, "join", "later", ["ep3", 5]],
  ]);
  const [rejoin, again] = server.session.log;
  assert.equal(again.id, pendingId, "a pending join keeps its id: its waiter gets the answer");
  assert.deepEqual(again.meta, 7);
  assert.ok(![pendingId, server.session.log[3].id].includes(rejoin.id));
  assert.equal((await pending).room, "pending");
  assert.equal((await later).room, "later");
  assert.deepEqual(socket.rooms, { lobby: { nick: "ann" }, pending: 7, later: null });
  await socket.close();
});

test("a join answered after the caller's AckTimeout still makes the room the socket's", async () => {
  const { socket, server, clock } = setup({ ackTimeout: 1000 });
  await socket.ready();
  server.answer = false;
  server.heads.set("room:/:slow", ["ep", 12]);
  const waiting = assert.rejects(socket.join("slow", { meta: { a: 1 } }), AckTimeout);
  await clock.advance(1100);
  await waiting;
  assert.deepEqual(socket.rooms, {});
  // The answer comes after all: applied.
  server.answer = true;
  const [join] = server.session.log;
  server._handle(server.session, join);
  await until(clock, () => Object.keys(socket.rooms).length === 1);
  assert.deepEqual(socket.rooms, { slow: { a: 1 } });
  assert.deepEqual(socket.positions, { slow: ["ep", 12] });
  // A lost session rejoins it from there.
  await restart(server, clock, socket);
  await until(clock, () => server.session.log.length === 1);
  assert.deepEqual([server.session.log[0].r, server.session.log[0].since], ["slow", ["ep", 12]]);
  await socket.close();
});

test("requests the lost session received: calls reject RequestLost at once, leaves resolve", async () => {
  const { socket, server, clock } = setup({ transports: ["sse"], ackTimeout: 60000 });
  await socket.ready();
  await socket.join("lobby");
  server.answer = false;
  const call = socket.call("echo", 1);
  const leaving = socket.leave("lobby");
  const cancelled = socket.join("gone");
  const leavingGone = socket.leave("gone");
  await until(clock, () => server.session.log.length === 5 && socket.peer.unconfirmed.length === 0);
  const outcomes = [];
  const track = (name, p) => p.then((v) => outcomes.push([name, v]), (e) => outcomes.push([name, e]));
  track("call", call);
  track("leave", leaving);
  track("join", cancelled);
  track("leaveGone", leavingGone);
  let resent;
  await restart(server, clock, socket, () => {
    server.answer = true;
    resent = socket.call("echo", 2); // queued offline: sent again, answered as usual
  });
  await until(clock, () => outcomes.length === 4);
  assert.ok(clock.t < 60000, "not after a timeout");
  const by = Object.fromEntries(outcomes);
  assert.ok(by.call instanceof RequestLost, String(by.call));
  assert.ok(by.join instanceof RequestLost, String(by.join));
  assert.deepEqual(by.leave, { room: "lobby" });
  assert.deepEqual(by.leaveGone, { room: "gone" });
  assert.equal(await resent, 2);
  assert.deepEqual(socket.rooms, {});
  assert.deepEqual(server.session.log.map((f) => f.t), ["event"], "no room is rejoined");
  await socket.close();
});

test("every negotiate reports every stream position in `since` (no user_since)", async () => {
  const { socket, server, clock } = setup();
  await socket.ready();
  assert.equal(server.negotiations[0].body.since, undefined);
  const sid = socket.sid;
  await socket.join("lobby");
  server.push("dm", "one", { o: ["user:/:user", "ep", 4] });
  server.push("chat", "hi", { r: "lobby", o: ["room:/:lobby", "ep", 9] });
  await until(clock, () => socket.positions.lobby?.[1] === 9);
  server.dropLive();
  await until(clock, () => socket.state === "connected" && server.negotiations.length === 2);
  const body = server.negotiations[1].body;
  assert.equal(body.user_since, undefined);
  assert.deepEqual(body.since.slice().sort(), [
    ["all:/", "ep", 0],
    ["room:/:lobby", "ep", 9],
    [`sess:/:${sid}`, "ep", 0],
    ["user:/:user", "ep", 4],
  ]);
  await socket.close();
});

test("a fresh hello's streams become positions; $lost moves a position past what it announces", async () => {
  const { socket, server, clock } = setup({ transports: ["websocket"] });
  server.heads.set("user:/:user", ["eu", 3]);
  server.heads.set("all:/", ["ea", 7]);
  const seen = [];
  socket.on("dm", (d) => seen.push(d));
  socket.on("chat", (d) => seen.push(d));
  socket.on("$lost", (d, info) => seen.push([d, info.offset]));
  await socket.ready();
  const first = socket.sid;
  assert.deepEqual(socket.userPosition, ["eu", 3]);
  assert.deepEqual(socket.continuity.since(), [["user:/:user", "eu", 3], [`sess:/:${first}`, "ep", 0], ["all:/", "ea", 7]]);
  server.push("dm", "old", { o: ["user:/:user", "eu", 3] }); // where the stream started: had
  server.push("dm", "new", { o: ["user:/:user", "eu", 4] });
  await socket.join("lobby");
  server.push("chat", 4, { r: "lobby", o: ["room:/:lobby", "ep", 4] });
  // History no longer held 5-9 of the room: announced, then the stream goes on.
  const lost = { stream: "room:/:lobby", epoch: "ep", from: 5, to: 9, room: "lobby" };
  server.push("$lost", lost);
  server.push("chat", 9, { r: "lobby", o: ["room:/:lobby", "ep", 9] });
  server.push("chat", 10, { r: "lobby", o: ["room:/:lobby", "ep", 10] });
  await until(clock, () => socket.positions.lobby?.[1] === 10);
  assert.deepEqual(seen, ["new", 4, [lost, null], 10]);
  assert.deepEqual(socket.userPosition, ["eu", 4]);
  assert.equal(socket.stats.duplicates, 2);
  // A $lost whose end is unknown moves nothing.
  server.push("$lost", { stream: "room:/:lobby", epoch: "ep", from: 11, to: null });
  await until(clock, () => seen.length === 5);
  assert.deepEqual(socket.positions.lobby, ["ep", 10]);
  // The next fresh session lists its own streams: the old session's is forgotten, a
  // position ahead of the listed one in the same epoch is kept.
  server.heads.set("user:/:user", ["eu", 2]);
  await restart(server, clock, socket);
  assert.notEqual(socket.sid, first);
  assert.deepEqual(socket.userPosition, ["eu", 4]);
  const streams = socket.continuity.since().map(([s]) => s).sort();
  assert.deepEqual(streams, ["all:/", "room:/:lobby", `sess:/:${socket.sid}`, "user:/:user"]);
  await socket.close();
});

test("a rejoin the fresh session refuses removes the room, and is reported", async () => {
  const { socket, server, clock } = setup();
  await socket.ready();
  await socket.join("vip");
  await socket.join("lobby");
  const reported = [];
  const original = console.error;
  console.error = (...args) => reported.push(args.join(" "));
  try {
    await restart(server, clock, socket, () => server.refused.add("vip"));
    await until(clock, () => server.session.log.length === 2 && !("vip" in socket.rooms));
  } finally {
    console.error = original;
  }
  assert.deepEqual(socket.rooms, { lobby: null });
  assert.equal(reported.length, 1);
  assert.match(reported[0], /rejoining 'vip' was refused: forbidden/);
  await socket.close();
});

test("the heartbeat option asks for its ping interval at every negotiate", async () => {
  const { socket, server, clock } = setup({ heartbeat: 30000 });
  await socket.ready();
  assert.equal(server.negotiations[0].body.ping_interval, 30000);
  server.dropLive();
  await until(clock, () => socket.state === "connected" && server.negotiations.length === 2);
  assert.equal(server.negotiations[1].body.ping_interval, 30000); // kept across reconnects
  await socket.close();
  assert.throws(() => connect({ heartbeat: -1 }), TypeError);
});
