// The receipt rule (docs/protocol.md 6.4): the pure rule (a port of
// tests/unit/test_receipts.py) and the socket following what negotiate advertised.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "../../anywire/clients/js/anywire.js";
import * as F from "../../anywire/clients/js/frames.js";
import { parseNegotiated } from "../../anywire/clients/js/negotiate.js";
import { ClientPeer } from "../../anywire/clients/js/peer.js";
import { LEGACY, rxRule } from "../../anywire/clients/js/rxrule.js";
import { FakeClock, FakeServer, FakeStorage, FakeWindow } from "./fakes.js";

const RULE = rxRule({ frames: 64, bytes: 1000, ms: 1000 });
const ev = (s) => F.event(s, "n", null);

/** A seeded generator of floats in [0, 1) (mulberry32), for repeatable draws. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function peerWith(rule, draw) {
  const peer = new ClientPeer(1000, LEGACY, typeof draw === "number" ? () => draw : draw);
  peer.setRxRule(rule);
  return peer;
}

function framesUntilRx(peer, limit = 1000) {
  for (let k = 1; k <= limit; k++) {
    peer.receive(ev(peer.inLast + 1));
    if (peer.rxDue() !== null) return k;
  }
  throw new Error(`no rx after ${limit} frames`);
}

test("receipts: the threshold is drawn afresh after every receipt, within half to all", () => {
  const peer = peerWith(rxRule({ frames: 64 }), seeded(7));
  const gaps = Array.from({ length: 300 }, () => framesUntilRx(peer));
  assert.equal(Math.min(...gaps), 32);
  assert.equal(Math.max(...gaps), 64);
  assert.ok(new Set(gaps).size >= 25);
});

test("receipts: the draw maps uniformly onto the integers of the range", () => {
  assert.equal(framesUntilRx(peerWith(rxRule({ frames: 64 }), 0)), 32);
  assert.equal(framesUntilRx(peerWith(rxRule({ frames: 64 }), 0.5)), 48);
  assert.equal(framesUntilRx(peerWith(rxRule({ frames: 64 }), 0.999999)), 64);
  assert.equal(framesUntilRx(peerWith(rxRule({ frames: 5 }), 0)), 3);
});

test("receipts: a room of clients spreads its receipts over events", () => {
  const peers = Array.from({ length: 1000 }, (_, i) => peerWith(rxRule({ frames: 64 }), seeded(i + 1)));
  const perEvent = new Map();
  for (let s = 1; s <= 256; s++) {
    for (const p of peers) {
      p.receive(ev(s));
      if (p.rxDue() !== null) perEvent.set(s, (perEvent.get(s) ?? 0) + 1);
    }
  }
  assert.ok(Math.max(...perEvent.values()) <= 100);
});

test("receipts: the byte limit, scaled with the drawn count", () => {
  const peer = peerWith(RULE, 0.999999); // u = 1: 1000 bytes
  peer.receive(ev(1));
  peer.receivedBytes(600);
  assert.equal(peer.rxDue(), null);
  peer.receive(ev(2));
  peer.receivedBytes(400);
  assert.deepEqual(peer.rxDue(), { t: "rx", n: 2 });
  const half = peerWith(RULE, 0); // u = 1/2: 500 bytes
  half.receive(ev(1));
  half.receivedBytes(499);
  assert.equal(half.rxDue(), null);
  half.receivedBytes(1);
  assert.deepEqual(half.rxDue(), { t: "rx", n: 1 });
});

test("receipts: the time limit acknowledges the tail of a burst", () => {
  const peer = peerWith(RULE, 0); // u = 1/2: 500 ms
  assert.equal(peer.rxDeadline(), null);
  peer.receive(ev(1));
  assert.equal(peer.rxDue(false, 10000), null);
  assert.equal(peer.rxDeadline(), 10500);
  peer.receive(ev(2));
  assert.equal(peer.rxDue(false, 10300), null);
  assert.deepEqual(peer.rxDue(false, 10500), { t: "rx", n: 2 });
  assert.equal(peer.rxDeadline(), null);
});

test("receipts: without an advertised rule, every 16 frames and nothing else", () => {
  const neg = parseNegotiated({ sid: "s", token: "t", ticket: "k", transports: [] });
  assert.equal(neg.rx, LEGACY);
  const peer = peerWith(neg.rx, 0);
  assert.deepEqual([framesUntilRx(peer), framesUntilRx(peer)], [16, 16]);
  peer.receive(ev(peer.inLast + 1));
  peer.receivedBytes(1e9);
  assert.equal(peer.rxDue(false, 1e12), null);
  assert.equal(framesUntilRx(new ClientPeer()), 16);
});

test("receipts: negotiate's rx field, and malformed ones fall back", () => {
  const base = { sid: "s", token: "t", ticket: "k", transports: [] };
  assert.deepEqual(parseNegotiated({ ...base, rx: { frames: 40, bytes: 5000, ms: 300 } }).rx,
    { frames: 40, bytes: 5000, ms: 300, spread: true });
  for (const bad of [null, 16, [], {}, { frames: 0 }, { frames: -1 }, { frames: true }, { frames: 1.5 },
    { frames: 8, bytes: -1 }, { frames: 8, ms: "1" }]) {
    assert.equal(rxRule(bad), LEGACY, JSON.stringify(bad));
  }
  assert.deepEqual(rxRule({ frames: 8 }), { frames: 8, bytes: 0, ms: 0, spread: true });
});

function setup(rx, transports, random) {
  const clock = new FakeClock();
  const server = new FakeServer({ clock, transports, limits: rx ? { rx } : {} });
  const socket = connect({
    url: "http://srv.test",
    getToken: async () => "tok",
    env: server.env({ window: new FakeWindow(), storage: new FakeStorage(), random }),
    upgrade: false,
    transports,
    codec: "json", // WebSocket messages the test reads back as JSON
  });
  socket.on("n", () => {});
  return { clock, server, socket };
}

/** The rx frames the socket sent, by transport: POSTs (sse) or WebSocket messages. */
function receipts(server) {
  const ws = server.wsCreated.flatMap((w) => w.sentRaw.map((d) => JSON.parse(d))).flat();
  return [...server.posts.flat(), ...ws].filter((f) => f.t === "rx").map((f) => f.n);
}

for (const transport of ["websocket", "sse"]) {
  test(`receipts (${transport}): the socket follows the advertised count and acknowledges a burst's tail in time`, async () => {
    const draws = [0, 0.999999, 0.5, 0]; // thresholds 4, 8, 6, then 4 ...
    const { clock, server, socket } = setup({ frames: 8, bytes: 0, ms: 400 }, [transport], () => draws.shift() ?? 0);
    await socket.ready();
    const before = receipts(server).length; // none: the hello is not counted
    for (let i = 0; i < 21; i++) server.push("n", i);
    await clock.advance(10);
    assert.deepEqual(receipts(server).slice(before), [4, 12, 18]);
    await clock.advance(150); // the tail (19..21) waits up to 200 ms (u = 1/2 of 400)
    assert.deepEqual(receipts(server).slice(before), [4, 12, 18]);
    await clock.advance(100);
    assert.deepEqual(receipts(server).slice(before), [4, 12, 18, 21]);
    await clock.advance(5000);
    assert.deepEqual(receipts(server).slice(before), [4, 12, 18, 21]); // nothing more owed
    await socket.close();
  });
}

test("receipts: a server that advertises no rule gets one every 16 frames, tail left to the pong", async () => {
  const { clock, server, socket } = setup(null, ["websocket"], () => 0);
  await socket.ready();
  for (let i = 0; i < 20; i++) server.push("n", i);
  await clock.advance(5000);
  assert.deepEqual(receipts(server), [16]);
  await socket.close();
});
